//! SIGTERM and SIGINT on the real binary, as ECS stops a task: requests accepted before the
//! signal are all answered, the process exits 0; a second signal exits at once.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::process::GatewayProcess;

const EMULATOR: &str = r#"
[settings]
seed = 5
idle_reclaim_s = 600

[[function]]
name = "model"
timeout_s = 30
init_ms = 100
duration_ms = 400
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
"#;

const GATEWAY: &str = r#"
[gateway]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
shutdown_grace_ms = 20000

[backend]
kind = "embedded"
config = "emulator.toml"

[[function]]
name = "model"
targets = ["live"]
"#;

/// The binary serving the configuration above.
fn serve(name: &str, emulator: &str) -> GatewayProcess {
    let dir = std::env::temp_dir().join(format!("warmgate-shutdown-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("emulator.toml"), emulator).unwrap();
    std::fs::write(dir.join("warmgate.toml"), GATEWAY).unwrap();
    GatewayProcess::start(&dir.join("warmgate.toml"))
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_under_load_answers_every_accepted_request_and_exits_0() {
    let mut served = serve("term", EMULATOR);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/functions/model/invoke", served.addr);
    // Warm up, then forty requests in flight at once.
    assert_eq!(
        http.post(&url).body("{}").send().await.unwrap().status(),
        200
    );
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                http.post(&url)
                    .body(format!("{{\"id\":{i}}}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .collect();
    // All are sent and in flight (each takes 400 ms at the function) when the signal comes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    signal(&served.child, "TERM");
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let lost: Vec<_> = answers.iter().filter(|a| **a != Ok(200)).collect();
    assert!(lost.is_empty(), "accepted requests were lost: {lost:?}");
    let status = wait_exit(&mut served.child, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    // A function that runs for a minute: the drain would wait for it.
    let long = EMULATOR.replace("duration_ms = 400", "duration_ms = 60000");
    let mut served = serve("twice", &long);
    let url = format!("http://{}/v1/functions/model/invoke", served.addr);
    let call =
        tokio::spawn(async move { reqwest::Client::new().post(&url).body("{}").send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&served.child, "INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the first signal drains: the gateway waits for the request in flight"
    );
    signal(&served.child, "INT");
    let status = wait_exit(&mut served.child, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(
        call.await.unwrap().is_err(),
        "the request in flight was cut"
    );
}
