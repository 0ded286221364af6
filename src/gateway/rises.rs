//! The warmer's daily rises kept in Redis (a warmer with `[cache.redis]` and
//! `share_keep_alive`): the policy remembers for a day the minutes in which calls rose from
//! few to many, and pre-warms a rise seen two days running (`policy::warmer::daily`). In
//! memory alone, a gateway redeployed every day would never see one twice, and a replica that
//! takes over a function's keep-alive would start its two days again.
//!
//! So each rise the policy records or raises (`Policy::rises_to_keep`) is kept in
//! `<prefix>:warmer:rises:<wall-clock day>`, field `<wall-clock minute>:<function>`, the
//! largest peak any replica saw, for three days after the day's last change; and a gateway
//! that starts gives its policy the last three days' (`Policy::kept_rise`), oldest first, as
//! the policy would have recorded them (trying again each minute until Redis answers). Rises
//! Redis did not take wait and go with the next ones. Replicas that share their calls each
//! record a burst, under the same field.
//!
//! `GET /v1/pools` shows each function's rises by their time of day ([`Gateway::daily_rises`]).
//!
//! Minutes are wall-clock minutes at the gateway's time scale, as the provisioning loads'
//! ([`super::fleet::MinuteAlign`]): a gateway started at another second reads them to within
//! a minute, which a daily rise's minute of tolerance absorbs.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Gateway;
use crate::cache::redis::MINUTES_A_DAY;
use crate::policy::FunctionId;

/// How long a day's rises are kept after their last change, on the gateway's clock: a rise
/// is compared with the day before, and that one with the day before it.
const KEEP: Duration = Duration::from_secs(3 * 24 * 3600);

/// The most rises waiting for Redis to answer; beyond, the newest are dropped (the policy
/// still has them).
const MOST_PENDING: usize = 10_000;

/// The gateway's side of the keeping.
pub(super) struct KeptRises {
    /// [`KEEP`] in real time, as Redis counts it.
    keep: Duration,
    /// Rises Redis did not take, to be kept with the next ones: (function, minute, peak).
    pending: Mutex<Vec<(FunctionId, i64, u32)>>,
}

impl KeptRises {
    pub(super) fn new(scale: f64) -> Self {
        Self {
            keep: KEEP.div_f64(scale).max(Duration::from_secs(1)),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Whether rises wait for Redis.
    pub(super) fn pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }
}

impl Gateway {
    /// The rises the warmer remembers for `function` (`GET /v1/pools`), by their wall-clock
    /// time of day, UTC at the gateway's time scale; `None` without a warmer.
    pub(super) fn daily_rises(&self, function: FunctionId) -> Option<serde_json::Value> {
        let warmer = self
            .warmer
            .as_ref()
            .filter(|_| self.config.warmer.enabled)?;
        let rises: Vec<_> = warmer
            .daily_rises(function)
            .into_iter()
            .map(|r| {
                let of_day = self.wall.wall_minute(r.minute) % MINUTES_A_DAY;
                serde_json::json!({
                    "at_utc": format!("{:02}:{:02}", of_day / 60, of_day % 60),
                    "peak": r.peak,
                    "days": r.days,
                    "expected": r.expected,
                })
            })
            .collect();
        Some(rises.into())
    }

    /// Keeps in Redis the rises the policy recorded or raised: (function, minute of the
    /// policy clock, peak), and those Redis did not take before.
    pub(super) async fn keep_rises(self: Arc<Self>, mut rises: Vec<(FunctionId, i64, u32)>) {
        let (Some(kept), Some(redis)) = (&self.rises, &self.redis) else {
            return;
        };
        rises.append(&mut kept.pending.lock());
        if rises.is_empty() {
            return;
        }
        let named: Vec<(&str, u64, u32)> = rises
            .iter()
            .filter_map(|&(function, minute, peak)| {
                let state = self.function_by_id(function)?;
                Some((
                    state.config.name.as_str(),
                    self.wall.wall_minute(minute),
                    peak,
                ))
            })
            .collect();
        if !redis.rises_keep(&named, kept.keep).await {
            let mut pending = kept.pending.lock();
            if pending.is_empty() {
                tracing::warn!(
                    rises = rises.len(),
                    "daily rises not kept in Redis yet: kept when it answers"
                );
            }
            // The larger peak of a minute is kept in Redis either way.
            rises.truncate(MOST_PENDING.saturating_sub(pending.len()));
            pending.append(&mut rises);
        }
    }

    /// Gives the policy the rises kept in Redis over the last three days (and the fourth's
    /// last minutes), oldest first. Returns how many it was given, or `None` when Redis did
    /// not answer.
    pub(super) async fn restore_rises(self: Arc<Self>) -> Option<usize> {
        let (Some(_), Some(redis), Some(warmer)) = (&self.rises, &self.redis, &self.warmer) else {
            return Some(0);
        };
        let today = self.wall.wall_minute((self.now().as_secs() / 60) as i64) / MINUTES_A_DAY;
        let rises = redis.rises_read(today.saturating_sub(3)..today + 1).await?;
        let mut given = 0;
        for (name, wall, peak) in rises {
            // Functions another replica's configuration has and this one's not: left out.
            let Some(&function) = self.by_name.get(&name) else {
                continue;
            };
            warmer.kept_rise(function, self.wall.clock_minute(wall), peak);
            given += 1;
        }
        Some(given)
    }
}
