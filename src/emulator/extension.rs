//! warmgate's Lambda extension, stood in for: each on-demand environment the platform ends is
//! reported to a gateway as the extension reports its SHUTDOWN event (ARCHITECTURE.md,
//! "Environment ends"), so that the gateway's warmer can be run against the emulator with
//! ends reported.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::Emulator;

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
}
