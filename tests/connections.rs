//! Slow and greedy clients, over real sockets: a slowloris client is cut off at the header
//! timeout while others are served, a slow body is answered 408, and connections past the cap
//! are answered 503 with Retry-After while the gateway keeps serving.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short deadlines, so that the test waits little; they are what is under test.
fn limits(extra: &str) -> String {
    common::GATEWAY.replace(
        "max_in_flight = 64",
        &format!(
            "max_in_flight = 64\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300\n{extra}"
        ),
    )
}

/// Reads until the peer closes (Ok(bytes)) or `limit` passes (Err).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, ()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .map_err(|_| ())
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let stack = common::start_with(&limits(""), true).await;
    let addr = stack.gateway.addr();
    // Twenty clients that trickle a header line every 100 ms, for up to 3 s: far past the
    // 300 ms the head is allowed.
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"POST /v1/functions/sentiment/invoke HTTP/1.1\r\nhost: x\r\n")
                .await
                .unwrap();
            for i in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream
                    .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return true; // cut off
                }
                let mut probe = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    _ => {}
                }
            }
            false
        }));
    }
    // Meanwhile, others are served.
    for _ in 0..5 {
        let response = stack.invoke("sentiment", r#"{"text":"hi"}"#).await;
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for client in slow {
        assert!(
            client.await.unwrap(),
            "a slowloris client was still connected after trickling headers for 3 s"
        );
    }
    let metrics = warmgate::telemetry::prometheus().render();
    assert!(
        metrics.contains("warmgate_client_connections_timed_out_total{deadline=\"header\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let stack = common::start_with(&limits(""), true).await;
    let mut stream = TcpStream::connect(stack.gateway.addr()).await.unwrap();
    stream
        .write_all(
            b"POST /v1/functions/sentiment/invoke HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"te",
        )
        .await
        .unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(10))
        .await
        .expect("the gateway answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

#[tokio::test]
async fn past_the_connection_cap_a_client_is_answered_503_and_the_gateway_keeps_serving() {
    // Four connections at most; long header deadline so the idle ones hold their places.
    let config = limits("max_connections = 4").replace(
        "header_read_timeout_ms = 300",
        "header_read_timeout_ms = 30000",
    );
    let stack = common::start_with(&config, true).await;
    let addr = stack.gateway.addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the gateway accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(addr).await.unwrap();
    over.write_all(
        b"POST /v1/functions/sentiment/invoke HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut over, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("overloaded"), "{answer}");

    // A place frees up: the next client is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = stack.invoke("sentiment", r#"{"text":"hi"}"#).await;
    assert_eq!(response.status(), 200);
}
