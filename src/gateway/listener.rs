//! The client-facing listener: HTTP/1.1 connections served by hyper, with the limits a public
//! endpoint needs against slow and greedy clients, as nginx sets them:
//!
//! - a request's head must arrive within `header_read_timeout` of its first byte (or of the
//!   connection's accept): a slowloris client, trickling header lines, is cut off;
//! - a kept-alive connection idle for `idle_timeout` is closed. It is longer than the
//!   header timeout on purpose: a load balancer reuses its connections, and closing one it is
//!   about to reuse turns into a 502 (the ALB's own idle timeout is 60 s, so ours is longer);
//! - at most `max_connections` are served at once; beyond that a connection is answered 503
//!   with `Retry-After` and closed, without reading its request.
//!
//! Body reads are bounded per request in the routes, and the whole request by the invoke
//! layers. hyper's own `header_read_timeout` cannot give both bounds (it also runs while a
//! connection is idle), so the two deadlines are kept here, on the connection's socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::telemetry;

/// The limits on client connections (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Connections being answered 503 at once; past this, one over the cap is just closed.
const MAX_REJECTING: usize = 256;

/// What an over-the-cap connection is told before it is closed: the gateway's error shape.
fn over_capacity(max_connections: usize) -> Vec<u8> {
    let body = serde_json::json!({"error": {
        "code": "overloaded",
        "message": format!("the gateway serves {max_connections} connections, its limit; retry shortly"),
    }})
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `stop` is cancelled; then stops accepting, lets every
/// connection finish its request in flight, and returns once all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let refusal: Arc<[u8]> = over_capacity(limits.max_connections).into();
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our own deadlines replace hyper's header timer (see the module's documentation).
    builder.header_read_timeout(None);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            telemetry::connection_rejected();
            if let Ok(permit) = rejecting.clone().try_acquire_owned() {
                let refusal = refusal.clone();
                tokio::spawn(async move {
                    refuse(stream, &refusal).await;
                    drop(permit);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let phase = Arc::new(Mutex::new(Phase::Head(
            Instant::now() + limits.header_read_timeout,
        )));
        let io = TokioIo::new(Deadlines::new(stream, phase.clone(), limits));
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let phase = phase.clone();
            *phase.lock() = Phase::Busy;
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                *phase.lock() = Phase::Idle(Instant::now() + limits.idle_timeout);
                response
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            telemetry::connection_opened();
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            telemetry::connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers 503 without reading the request, then drains what the client sends for a moment
/// so that closing does not reset the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream, refusal: &[u8]) {
    let answered = async {
        stream.write_all(refusal).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
}

/// Where a connection is between requests, and the deadline that bounds it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request's head, due by then.
    Head(Instant),
    /// A request is being served: its body read and its answer are bounded elsewhere.
    Busy,
    /// Kept alive without a request, closed at then.
    Idle(Instant),
}

/// A socket that fails its reads once the connection's deadline passes.
struct Deadlines<IO> {
    io: IO,
    phase: Arc<Mutex<Phase>>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
}

impl<IO> Deadlines<IO> {
    fn new(io: IO, phase: Arc<Mutex<Phase>>, limits: ConnectionLimits) -> Self {
        Self {
            io,
            phase,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Whether the deadline passed; if not, the timer wakes the connection when it does.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        let (deadline, which) = match *self.phase.lock() {
            Phase::Head(at) => (at, "header"),
            Phase::Idle(at) => (at, "idle"),
            Phase::Busy => return None,
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready().then_some(which)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Deadlines<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let mut phase = this.phase.lock();
                // The first byte of the next request on a kept-alive connection: its head is
                // due within the header timeout.
                if buf.filled().len() > before && matches!(*phase, Phase::Idle(_)) {
                    *phase = Phase::Head(Instant::now() + this.limits.header_read_timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_expired(cx) {
                Some(which) => {
                    telemetry::connection_timed_out(which);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("client connection past its {which} timeout"),
                    )))
                }
                None => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Deadlines<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
