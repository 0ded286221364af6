//! The cache tests' emulator, gateway configuration and client.

use super::{start_on, Stack};

/// A model with a 2 s cold start whose two aliases run different code (a new deployment),
/// and a function that always fails.
pub const EMULATOR: &str = r#"
[settings]
seed = 11
idle_reclaim_s = 600

[[function]]
name = "model"
memory_mb = 2048
timeout_s = 30
init_ms = 2000
duration_ms = 40
[[function.version]]
code = "model-v1"
[[function.version]]
code = "model-v2"
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "next"
version = "2"

[[function]]
name = "flaky"
init_ms = 100
duration_ms = 10
error_rate = 1.0
"#;

/// `model` cached (a request id left out of the key), `flaky` cached, and `shared`, the same
/// model coalesced without a cache. `{alias}` and `{redis}` are filled in.
pub const GATEWAY: &str = r#"
[gateway]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
max_in_flight = 512

[backend]
kind = "endpoint"
url = "http://placeholder"

[access]
open = true

{redis}

[[function]]
name = "model"
targets = ["{alias}"]
[function.cache]
ttl_s = 600
ignore = ["/request_id"]

[[function]]
name = "flaky"
[function.cache]

[[function]]
name = "shared"
lambda_name = "model"
targets = ["{alias}"]
coalesce = true
"#;

pub fn gateway_toml(alias: &str, redis: Option<&str>) -> String {
    let redis = redis.map_or(String::new(), |url| {
        // Generous bounds: a loaded CI machine must not turn a healthy Redis into a timeout.
        format!("[cache.redis]\nurl = \"{url}\"\ntimeout_ms = 2000\nretry_after_ms = 200\n")
    });
    GATEWAY.replace("{alias}", alias).replace("{redis}", &redis)
}

pub async fn start(alias: &str, redis: Option<&str>) -> Stack {
    start_on(EMULATOR, &gateway_toml(alias, redis), true).await
}

/// Invocations the emulator ran for `function` (pings and probes left out).
pub fn invocations(stack: &Stack, function: &str) -> u64 {
    let truth = stack.emulator.emulator().snapshot();
    let totals = truth.function(function).unwrap().totals();
    totals.invocations() - totals.pings
}

pub struct Answer {
    pub status: u16,
    pub cache: String,
    pub cold: String,
    pub timing: String,
    pub body: String,
}

pub async fn call(
    stack: &Stack,
    function: &str,
    body: &str,
    cache_control: Option<&str>,
) -> Answer {
    call_at(&stack.http, &stack.url(""), function, body, cache_control).await
}

/// A POST to `function` on the gateway at `base` (`http://host:port`).
pub async fn call_at(
    http: &reqwest::Client,
    base: &str,
    function: &str,
    body: &str,
    cache_control: Option<&str>,
) -> Answer {
    let mut request = http
        .post(format!("{base}/v1/functions/{function}/invoke"))
        .body(body.to_string());
    if let Some(value) = cache_control {
        request = request.header("cache-control", value);
    }
    let response = request.send().await.expect("the gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
            .to_string()
    };
    Answer {
        status: response.status().as_u16(),
        cache: header("x-warmgate-cache"),
        cold: header("x-warmgate-cold-start"),
        timing: header("server-timing"),
        body: response.text().await.unwrap(),
    }
}
