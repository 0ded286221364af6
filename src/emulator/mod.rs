//! The emulator: Lambda's REST API served over the platform model.
//!
//! aws-sdk-lambda, the AWS CLI and boto3 talk to it unchanged (endpoint URL plus any static
//! credentials). It adds one path outside the AWS API, `GET /_emulator/state`, the ground
//! truth (environments by state, cold starts, throttles, GB-s) that tests and load tests
//! compare warmgate's estimates with; and `/_emulator/faults`, to inject failures per
//! function at run time ([`faults`]).
//!
//! Time comes from a [`Clock`](crate::clock::Clock): tokio's (optionally sped up, so one real
//! second can count as a minute of idle) or a manual one. The emulator holds each response
//! until the platform says the invocation ends, so callers feel init and handler durations.

mod api;
mod error;
pub mod extension;
pub mod faults;

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, Time};
use crate::platform::{Platform, PlatformSpec, Snapshot};

/// The path of the ground-truth endpoint.
pub const STATE_PATH: &str = "/_emulator/state";
/// The path of fault injection: `GET` the report, `PUT`/`DELETE` `/{function}`.
pub const FAULTS_PATH: &str = "/_emulator/faults";

/// A platform and the clock that drives it, shared by the API handlers.
#[derive(Clone)]
pub struct Emulator {
    platform: Arc<Mutex<Platform>>,
    clock: SharedClock,
    faults: Arc<Mutex<faults::FaultState>>,
    /// Wall-clock time at start, for `LastModified` fields.
    started: std::time::SystemTime,
    /// Where direct calls are reported, as warmgate-extension's proxy reports them
    /// (`extension`), while a [`extension::CallReporter`] is held.
    calls: Arc<Mutex<Option<extension::CallReports>>>,
}

impl Emulator {
    /// An emulator of `spec` driven by `clock`.
    pub fn new(spec: PlatformSpec, clock: SharedClock) -> Self {
        Self {
            platform: Arc::new(Mutex::new(Platform::new(spec))),
            clock,
            faults: Arc::new(Mutex::new(faults::FaultState::new(0))),
            started: std::time::SystemTime::now(),
            calls: Arc::new(Mutex::new(None)),
        }
    }

    /// The Lambda API as an axum router, to serve or to nest.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// The clock's current time.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Ground truth now.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.clock.now();
        self.platform.lock().snapshot(now)
    }

    /// Sets `function`'s injected faults (all zero clears them); the error names the field.
    pub fn set_faults(&self, function: &str, faults: faults::Faults) -> Result<(), String> {
        self.faults.lock().set(function, faults)
    }

    /// The faults in force, what they injected, and the executions they judge by.
    pub fn fault_report(&self) -> faults::FaultReport {
        self.faults.lock().report()
    }

    /// Runs `f` on the platform at the clock's current time.
    pub fn with_platform<R>(&self, f: impl FnOnce(&mut Platform, Time) -> R) -> R {
        let now = self.clock.now();
        f(&mut self.platform.lock(), now)
    }

    /// Serves the API on `addr` (port 0 picks a free one) until [`RunningEmulator::shutdown`].
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningEmulator {
            addr,
            emulator: self,
            stop: Some(stop),
            task,
        })
    }
}

/// An emulator serving on a socket.
pub struct RunningEmulator {
    addr: SocketAddr,
    emulator: Emulator,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningEmulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give an AWS SDK.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops accepting, lets in-flight invocations finish, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
