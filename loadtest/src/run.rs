//! The open loop: each request is sent at its scheduled time whatever the answers to the
//! earlier ones (a task per request), and charged from that time; a collector folds the
//! outcomes into the tally and drives the progress bar.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::Sender;
use crate::procstat;
use crate::schedule::Schedule;
use crate::tally::{Outcome, Tally};

/// The first request goes this long after the start, so that spawning the loop is not
/// charged to it.
const LEAD: Duration = Duration::from_millis(100);

/// What the processes under test spent during the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spent {
    pub cpu_s: f64,
    /// CPU per request sent, in µs.
    pub cpu_us_per_request: f64,
    /// Peak resident memory of the watched processes together, sampled every 500 ms.
    pub peak_resident_mb: f64,
}

/// What a run did.
pub struct Done {
    pub tally: Tally,
    pub sent: u64,
    pub wall: Duration,
    pub spent: Option<Spent>,
}

/// Sends every request of `schedule` through `sender`; `warmup` as in [`Tally::new`].
pub async fn run(
    schedule: Schedule,
    sender: Sender,
    warmup: Duration,
    watch: &[u32],
    progress: bool,
) -> anyhow::Result<Done> {
    let total = schedule.sends.len() as u64;
    let mut tally = Tally::new(schedule.trace_span, warmup);
    let cpu_before = if watch.is_empty() {
        None
    } else {
        Some(procstat::cpu_time(watch)?)
    };
    let peak_rss = Arc::new(AtomicU64::new(procstat::resident_bytes(watch)));
    let sampler = (!watch.is_empty()).then(|| {
        let (pids, peak) = (watch.to_vec(), peak_rss.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                peak.fetch_max(procstat::resident_bytes(&pids), Ordering::Relaxed);
            }
        })
    });

    let bar = progress_bar(total, progress, schedule.wall_span());
    let sent = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now() + LEAD;
    let send_loop = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for s in schedule.sends {
                let intended = start + s.at;
                tokio::time::sleep_until(intended).await;
                let (sender, tx) = (sender.clone(), tx.clone());
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let sent_at = Instant::now().saturating_duration_since(start);
                    let answer = sender.send(s.function).await;
                    let done = Instant::now().saturating_duration_since(start);
                    // The collector outlives every sender, so this cannot fail.
                    let _ = tx.send(Outcome {
                        intended: s.at,
                        sent: sent_at,
                        done,
                        trace_at: s.trace_at,
                        answer,
                    });
                });
            }
        })
    };

    // Ends once the send loop and every request task have dropped their senders.
    while let Some(outcome) = rx.recv().await {
        tally.record(&outcome);
        bar.inc(1);
        if bar.position().is_multiple_of(64) {
            bar.set_message(message(&tally));
        }
    }
    send_loop.await.context("the send loop panicked")?;
    let wall = Instant::now().saturating_duration_since(start);
    bar.finish_with_message(message(&tally));
    if let Some(task) = sampler {
        task.abort();
    }
    let sent = sent.load(Ordering::Relaxed);
    let spent = match cpu_before {
        None => None,
        Some(before) => {
            let cpu = procstat::cpu_time(watch)?.saturating_sub(before);
            Some(Spent {
                cpu_s: cpu.as_secs_f64(),
                cpu_us_per_request: cpu.as_secs_f64() * 1e6 / sent.max(1) as f64,
                peak_resident_mb: peak_rss
                    .load(Ordering::Relaxed)
                    .max(procstat::resident_bytes(watch)) as f64
                    / (1024.0 * 1024.0),
            })
        }
    };
    Ok(Done {
        tally,
        sent,
        wall,
        spent,
    })
}

fn message(t: &Tally) -> String {
    let errors: u64 = t.errors.values().sum();
    format!("cold {}, errors {errors}", t.cold)
}

fn progress_bar(total: u64, show: bool, wall: Duration) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} {bar:40} {pos}/{len} answered ({per_sec}) {msg}",
        )
        .expect("a valid template"),
    );
    bar.println(format!(
        "sending {total} requests over {:.1} s",
        wall.as_secs_f64()
    ));
    bar
}
