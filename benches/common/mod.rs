//! A minimal HTTP/1.1 keep-alive load generator for the benches: the cheapest client there
//! is, so that the figures are about the server.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A POST request with a JSON body, as raw bytes.
pub fn post(
    addr: std::net::SocketAddr,
    path: &str,
    extra_headers: &str,
    body: &str,
) -> Arc<Vec<u8>> {
    Arc::new(
        format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{extra_headers}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Sends requests one after another on one connection until `deadline`; latencies in µs.
pub async fn drive(
    addr: std::net::SocketAddr,
    request: Arc<Vec<u8>>,
    deadline: Instant,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    while Instant::now() < deadline {
        let sent = Instant::now();
        stream.write_all(&request).await.unwrap();
        read_response(&mut stream, &mut buf).await;
        latency.record(sent.elapsed().as_micros() as u64).unwrap();
    }
    latency
}

/// Reads one HTTP/1.1 response with a Content-Length body; panics on anything but 200.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "connection closed");
        filled += n;
        let head = &buf[..filled];
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = std::str::from_utf8(&head[..end]).unwrap();
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            let length: usize = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            while filled < end + 4 + length {
                let n = stream.read(&mut buf[filled..]).await.unwrap();
                assert!(n > 0, "connection closed");
                filled += n;
            }
            return;
        }
    }
}
