//! One request's way: built for the chosen API, sent on a pooled keep-alive HTTP/1.1
//! connection (hyper-util's client: the lightest that pools), and its answer read into an
//! [`Answer`]: status, function error, and whether it met a cold start.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use warmgate::lambda::report::{decode_log_result, parse_log_tail};

use crate::tally::{Answer, Failure};

/// The body of every request: a small inference input, never the ping payload.
const PAYLOAD: &[u8] = br#"{"text":"warm starts are lovely"}"#;

/// Which path requests take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// Lambda's Invoke path, `POST /2015-03-31/functions/{name}/invocations`, with the log tail
    /// asked for: the emulator, a proxy in front of it, or warmgate's Lambda-compatible path.
    Lambda,
    /// warmgate's own `POST /v1/functions/{name}/invoke`.
    Warmgate,
}

/// Sends requests to one endpoint.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Each function's full URI, built once.
    uris: Vec<http::Uri>,
    api: Api,
    timeout: Duration,
}

impl Sender {
    /// A sender to `base` (`http://host:port`) for functions `names`; `qualifier` is added to
    /// the Lambda path as `?Qualifier=` (on warmgate it pins a target, so leave it out there).
    pub fn new(
        base: &str,
        api: Api,
        names: &[String],
        qualifier: Option<&str>,
        timeout: Duration,
    ) -> Result<Sender, String> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(format!("--target {base:?}: expected an http:// URL"));
        }
        let uris = names
            .iter()
            .map(|name| {
                let path = match api {
                    Api::Lambda => format!("/2015-03-31/functions/{name}/invocations"),
                    Api::Warmgate => format!("/v1/functions/{name}/invoke"),
                };
                let query = match (api, qualifier) {
                    (Api::Lambda, Some(q)) => format!("?Qualifier={q}"),
                    _ => String::new(),
                };
                format!("{base}{path}{query}")
                    .parse::<http::Uri>()
                    .map_err(|e| format!("--target {base:?}: not a valid URL ({e})"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Open loop: as many connections as requests in flight, each kept for the next.
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Sender {
            client,
            uris,
            api,
            timeout,
        })
    }

    /// Sends one request to function `function` and reads its whole answer.
    pub async fn send(&self, function: u32) -> Answer {
        let mut request = Request::post(self.uris[function as usize].clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        if self.api == Api::Lambda {
            request = request.header("x-amz-log-type", "Tail");
        }
        let request = request
            .body(Full::new(Bytes::from_static(PAYLOAD)))
            .expect("a request from a valid URI");
        let call = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            // Read to the end, so that the connection goes back to the pool.
            body.collect().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts.status, parts.headers))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Answer::Error {
                kind: Failure::Timeout,
                cold: None,
            },
            Ok(Err(_)) => Answer::Error {
                kind: Failure::Connection,
                cold: None,
            },
            Ok(Ok((status, headers))) => classify(status, &headers),
        }
    }
}

/// An answer's outcome from its status and headers.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Answer {
    let cold = cold_start(headers);
    if !status.is_success() {
        Answer::Error {
            kind: Failure::Status(status.as_u16()),
            cold,
        }
    } else if headers.contains_key("x-amz-function-error") {
        Answer::Error {
            kind: Failure::FunctionError,
            cold,
        }
    } else {
        Answer::Ok { cold }
    }
}

/// Whether the answer met a cold start: warmgate's `x-warmgate-cold-start`, else the REPORT
/// line of Lambda's log tail (`Init Duration` present); `None` where neither tells.
pub fn cold_start(headers: &HeaderMap) -> Option<bool> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("x-warmgate-cold-start") {
        Some("true") => return Some(true),
        Some("false") => return Some(false),
        _ => {}
    }
    let tail = decode_log_result(text("x-amz-log-result")?)?;
    parse_log_tail(&tail).map(|report| report.init_duration.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use http::HeaderValue;
    use warmgate::lambda::report::Report;

    fn tail(init: Option<Duration>) -> HeaderValue {
        let report = Report {
            request_id: "r".into(),
            duration: Duration::from_millis(12),
            billed_duration: Duration::from_millis(12),
            memory_size_mb: 128,
            max_memory_used_mb: 64,
            init_duration: init,
            restore_duration: None,
            billed_restore_duration: None,
        };
        let text = format!("START RequestId: r\n{}\n", report.render());
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        HeaderValue::from_str(&encoded).unwrap()
    }

    #[test]
    fn cold_starts_are_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(cold_start(&h), None);
        h.insert("x-amz-log-result", tail(Some(Duration::from_millis(900))));
        assert_eq!(cold_start(&h), Some(true));
        h.insert("x-amz-log-result", tail(None));
        assert_eq!(cold_start(&h), Some(false));
        // warmgate's own header wins where it tells.
        h.insert("x-warmgate-cold-start", HeaderValue::from_static("true"));
        assert_eq!(cold_start(&h), Some(true));
        h.insert("x-warmgate-cold-start", HeaderValue::from_static("unknown"));
        assert_eq!(cold_start(&h), Some(false));
    }

    #[test]
    fn statuses_and_function_errors_are_failures() {
        let mut h = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &h), Answer::Ok { cold: None });
        let failure = |status, h: &HeaderMap| match classify(status, h) {
            Answer::Error { kind, .. } => Some(kind),
            Answer::Ok { .. } => None,
        };
        assert_eq!(
            failure(StatusCode::BAD_GATEWAY, &h),
            Some(Failure::Status(502))
        );
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
        assert_eq!(failure(StatusCode::OK, &h), Some(Failure::FunctionError));
    }

    #[test]
    fn a_target_must_be_an_http_url() {
        let names = ["f0".to_string()];
        let err = Sender::new(
            "localhost:80",
            Api::Lambda,
            &names,
            None,
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(err.contains("--target"), "{err}");
    }
}
