//! warmgate's Lambda extension, stood in for: each on-demand environment the platform ends is
//! reported to a gateway as the extension reports its SHUTDOWN event (ARCHITECTURE.md,
//! "Environment ends"), and each call the gateway did not send as the extension's Runtime
//! API proxy reports it ("Calls reported"), so that the gateway's warmer can be run against
//! the emulator with both reported.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::Emulator;
use crate::platform::Invocation;

/// The public name of a Lambda function in the gateway, if it has one.
type PublicName = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where calls are reported, and under which public names.
#[derive(Clone)]
pub(super) struct CallReports {
    base: String,
    http: reqwest::Client,
    public_name: PublicName,
}

/// Reports direct calls until dropped.
pub struct CallReporter {
    emulator: Emulator,
}

impl Drop for CallReporter {
    fn drop(&mut self) {
        *self.emulator.calls.lock() = None;
    }
}

/// Reports ends until dropped.
pub struct EndReporter {
    task: JoinHandle<()>,
}

impl Drop for EndReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    /// Reports each on-demand environment the platform ends from now on to the gateway at
    /// `gateway_url` (`POST /v1/functions/{name}/environments/ended`, under the public name
    /// `public_name` gives the Lambda function's; none, not reported), looking every `every`
    /// of the emulator's clock: what the extension's SHUTDOWN event would send. A report the
    /// gateway refuses is logged.
    pub fn report_ends_to(
        &self,
        gateway_url: &str,
        every: Duration,
        public_name: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> EndReporter {
        self.with_platform(|platform, _| platform.record_ends());
        let emulator = self.clone();
        let base = gateway_url.trim_end_matches('/').to_string();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                emulator.clock.sleep(every).await;
                let ended = emulator.with_platform(|platform, now| {
                    platform.advance(now);
                    platform.take_ended()
                });
                for end in ended {
                    let Some(name) = public_name(&end.function) else {
                        continue;
                    };
                    let age = end.at.saturating_sub(end.created);
                    let url = format!("{base}/v1/functions/{name}/environments/ended");
                    let report = serde_json::json!({
                        "age_ms": age.as_millis() as u64,
                        "reason": "spindown",
                    });
                    match http.post(&url).json(&report).send().await {
                        Ok(answer) if answer.status().is_success() => {}
                        Ok(answer) => {
                            tracing::warn!(status = %answer.status(), %url, "end report refused")
                        }
                        Err(error) => tracing::warn!(%error, %url, "end report not sent"),
                    }
                }
            }
        });
        EndReporter { task }
    }

    /// Reports each call served from now on that the gateway did not send (no ping, no
    /// `custom.warmgate-gateway` in its client context) to the gateway at `gateway_url`
    /// (`POST /v1/functions/{name}/environments/calls`, under the public name `public_name`
    /// gives; none, not reported): its start when its handler starts, after any init, and
    /// its end with the handler's time and the init, as the extension's proxy would.
    pub fn report_calls_to(
        &self,
        gateway_url: &str,
        public_name: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> CallReporter {
        *self.calls.lock() = Some(CallReports {
            base: gateway_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            public_name: Arc::new(public_name),
        });
        CallReporter {
            emulator: self.clone(),
        }
    }

    /// An invocation of `function` the API began, with the client context it came with:
    /// reported while a [`CallReporter`] is held, unless the gateway sent it.
    pub(super) fn report_call(
        &self,
        function: &str,
        invocation: &Invocation,
        client_context: Option<&Value>,
    ) {
        let key = crate::gateway::SENT_BY_GATEWAY_KEY;
        let marked = client_context.is_some_and(|c| c["custom"].get(key).is_some());
        if invocation.ping || marked {
            return;
        }
        let Some(reports) = self.calls.lock().clone() else {
            return;
        };
        let Some(name) = (reports.public_name)(function) else {
            return;
        };
        let url = format!("{}/v1/functions/{name}/environments/calls", reports.base);
        let id = invocation.request_id.clone();
        let init = invocation.start_delay();
        let handler_starts = invocation.started_at + init.unwrap_or_default();
        let completes = invocation.completes_at;
        let duration = invocation.duration;
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let post = |body: Value| {
                let (http, url) = (reports.http.clone(), url.clone());
                async move {
                    match http.post(&url).json(&body).send().await {
                        Ok(answer) if answer.status().is_success() => {}
                        Ok(answer) => {
                            tracing::warn!(status = %answer.status(), %url, "call report refused")
                        }
                        Err(error) => tracing::warn!(%error, %url, "call report not sent"),
                    }
                }
            };
            clock
                .sleep(handler_starts.saturating_sub(clock.now()))
                .await;
            post(serde_json::json!({ "event": "started", "request_id": id })).await;
            clock.sleep(completes.saturating_sub(clock.now())).await;
            let mut finished = serde_json::json!({
                "event": "finished",
                "request_id": id,
                "duration_ms": duration.as_millis() as u64,
            });
            if let Some(init) = init {
                finished["init_ms"] = (init.as_millis() as u64).into();
            }
            post(finished).await;
        });
    }
}
