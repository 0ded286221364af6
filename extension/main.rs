//! warmgate's Lambda extension: tells the gateway when Lambda ends the environment it runs in,
//! so that the warmer replaces a kept environment at its end rather than rotating it hours
//! before (ARCHITECTURE.md, "Environment ends"); and, where the function's runtime is pointed
//! at its Runtime API proxy (`proxy`), each call's start and end, so that the warmer counts
//! the calls of clients that call Lambda directly ("Calls reported").
//!
//! Lambda runs each executable in a layer's `extensions/` directory as an external extension
//! of every environment of the function. This one registers for the SHUTDOWN event only:
//! ends cost its own start (a few milliseconds of the environment's init) and, at the end,
//! one HTTP request within the two seconds Lambda allows; calls, where reported, two small
//! requests each.
//!
//! Set on the function:
//! - `WARMGATE_URL`: the gateway's base URL, as the function can reach it;
//! - `WARMGATE_FUNCTION`: the function's public name in the gateway (default: the Lambda
//!   function's name);
//! - `WARMGATE_API_KEY`: a key allowed that function, where access is closed;
//! - to report calls, `AWS_LAMBDA_EXEC_WRAPPER=/opt/warmgate-wrapper` (the layer's), which
//!   points the runtime at the proxy on `127.0.0.1:WARMGATE_PROXY_PORT` (default 9009);
//!   `WARMGATE_PING_PAYLOAD`, the gateway's ping payload where it is not the default.

mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Lambda requires the name registered to be the executable's file name.
const NAME: &str = "warmgate-extension";

/// Time kept back from Lambda's shutdown deadline for the process to exit.
const EXIT_MARGIN: Duration = Duration::from_millis(100);

/// Where the Runtime API proxy listens unless `WARMGATE_PROXY_PORT` says otherwise; the
/// layer's wrapper points the runtime at the same.
const DEFAULT_PROXY_PORT: u16 = 9009;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_type: String,
    #[serde(default)]
    shutdown_reason: Option<String>,
    /// Unix milliseconds by which the extension must have exited.
    #[serde(default)]
    deadline_ms: Option<u64>,
}

/// Where to report; an extension that cannot report still registers and waits, because one
/// that exits during init fails the function's init (`Extension.Crash`).
struct Reporting {
    gateway: String,
    function: String,
    api_key: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Reporting {
    /// From the function's environment, or why not (said once, at init).
    fn from_env() -> Option<Self> {
        let Some(gateway) = var("WARMGATE_URL") else {
            eprintln!("{NAME}: WARMGATE_URL is not set: neither ends nor calls are reported");
            return None;
        };
        let Some(function) = var("WARMGATE_FUNCTION").or_else(|| var("AWS_LAMBDA_FUNCTION_NAME"))
        else {
            eprintln!("{NAME}: neither WARMGATE_FUNCTION nor AWS_LAMBDA_FUNCTION_NAME is set");
            return None;
        };
        Some(Reporting {
            gateway: gateway.trim_end_matches('/').to_string(),
            function,
            api_key: var("WARMGATE_API_KEY"),
        })
    }

    /// Posts `body` to the function's `environments/{route}` within `within`; a refusal or
    /// a failure is logged as `what`'s, never retried.
    async fn send(
        &self,
        http: &reqwest::Client,
        route: &str,
        body: &serde_json::Value,
        within: Duration,
        what: &str,
    ) {
        let url = format!(
            "{}/v1/functions/{}/environments/{route}",
            self.gateway, self.function
        );
        let mut request = http.post(url).timeout(within).json(body);
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key);
        }
        match request.send().await {
            Ok(answer) if answer.status().is_success() => {}
            Ok(answer) => eprintln!("{NAME}: the gateway refused {what}: {}", answer.status()),
            Err(error) => eprintln!("{NAME}: {what} was not sent: {error}"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // The environment's init began about when Lambda started this process.
    let born = Instant::now();
    let runtime_api = var("AWS_LAMBDA_RUNTIME_API").context("AWS_LAMBDA_RUNTIME_API is not set")?;
    let reporting = Reporting::from_env().map(Arc::new);
    // Lambda's APIs are on the sandbox's own address: never through a proxy the function's
    // environment names for its own traffic. The gateway may be reached through one.
    let lambda = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("an HTTP client for Lambda's APIs")?;
    let http = reqwest::Client::new();
    // Listening before registering: Lambda starts the runtime once every extension has
    // registered, so the proxy is there before the runtime's first request.
    serve_proxy(&runtime_api, &lambda, &http, reporting.clone(), born).await;
    let api = format!("http://{runtime_api}/2020-01-01/extension");
    let registered = lambda
        .post(format!("{api}/register"))
        .header("Lambda-Extension-Name", NAME)
        .json(&serde_json::json!({ "events": ["SHUTDOWN"] }))
        .send()
        .await
        .context("registering with the Extensions API")?;
    if !registered.status().is_success() {
        bail!(
            "the Extensions API refused registration: {}",
            registered.status()
        );
    }
    let id = registered
        .headers()
        .get("Lambda-Extension-Identifier")
        .and_then(|v| v.to_str().ok())
        .context("registration answered no Lambda-Extension-Identifier")?
        .to_string();
    loop {
        let event: Event = lambda
            .get(format!("{api}/event/next"))
            .header("Lambda-Extension-Identifier", &id)
            .send()
            .await
            .context("waiting for the next event")?
            .json()
            .await
            .context("reading the next event")?;
        if event.event_type.eq_ignore_ascii_case("SHUTDOWN") {
            if let Some(reporting) = &reporting {
                report(&http, reporting, born.elapsed(), &event).await;
            }
            return Ok(());
        }
    }
}

/// Serves the Runtime API proxy on `127.0.0.1:WARMGATE_PROXY_PORT`. Where it cannot listen
/// it says so and the extension goes on: a runtime pointed at it then fails its init, which
/// the function's log shows with this line.
async fn serve_proxy(
    runtime_api: &str,
    lambda: &reqwest::Client,
    http: &reqwest::Client,
    reporting: Option<Arc<Reporting>>,
    born: Instant,
) {
    let port = match var("WARMGATE_PROXY_PORT").map(|p| p.parse::<u16>()) {
        None => DEFAULT_PROXY_PORT,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("{NAME}: WARMGATE_PROXY_PORT is not a port number: no Runtime API proxy");
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{NAME}: the Runtime API proxy cannot listen on 127.0.0.1:{port}: {error}");
            return;
        }
    };
    let ping_payload =
        var("WARMGATE_PING_PAYLOAD").unwrap_or_else(|| proxy::DEFAULT_PING_PAYLOAD.to_string());
    let router =
        proxy::Proxy::new(runtime_api, lambda, http, reporting, &ping_payload, born).router();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("{NAME}: the Runtime API proxy stopped: {error}");
        }
    });
}

/// Tells the gateway, within Lambda's deadline; a failure is logged, never retried.
async fn report(http: &reqwest::Client, settings: &Reporting, age: Duration, event: &Event) {
    let reason = event
        .shutdown_reason
        .as_deref()
        .unwrap_or("spindown")
        .to_ascii_lowercase();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = event
        .deadline_ms
        .map_or(Duration::from_secs(1), |d| {
            Duration::from_millis(d.saturating_sub(now_ms))
        })
        .saturating_sub(EXIT_MARGIN);
    let body = serde_json::json!({ "age_ms": age.as_millis() as u64, "reason": reason });
    let within = left.max(Duration::from_millis(1));
    settings
        .send(http, "ended", &body, within, "the end report")
        .await;
}
