//! The warmer's parameters ([`WarmerConfig`]); [`Default`] gives ours.

use std::time::Duration;

use crate::policy::forecast::ForecastConfig;
use crate::policy::pool::Lifetime;
#[cfg(doc)]
use crate::policy::FunctionInfo;

#[cfg(doc)]
use super::{daily, depth, ledger, FunctionWorth, FLOOR_GAP_MARGIN};

/// The warmer's parameters; [`Default`] gives ours.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmerConfig {
    /// The shortest idle time Lambda is assumed to keep an environment: 5 minutes (published
    /// measurements say 5 to 7 minutes, about 10 in 2019; the platform model's default is 5 to
    /// 10 minutes, uniform). Also the window one round of pings buys.
    pub min_lifetime: Duration,
    /// Environments are refreshed this long before they reach `min_lifetime` of idle: 2 s,
    /// the delay the gateway may add to a planned round (its jitter, 250 ms by default and
    /// kept below this, and the send; the gateway's `[warmer] refresh_margin_ms`).
    /// `min_lifetime` is already the platform's shortest idle
    /// time; each second of margin costs every refresh about a 300th more pings.
    pub refresh_margin: Duration,
    /// Pre-warming pings go this long before demand becomes likely (a cold start's init is
    /// over by then: on-demand init is capped at 10 s).
    pub lead: Duration,
    /// Environments are kept (or pre-warmed) when an arrival within the next `min_lifetime`
    /// is at least this likely.
    pub keep_threshold: f64,
    /// Keep one environment warm for a function never called yet.
    pub warm_unseen: bool,
    /// While a function's idle-time histogram has too few samples, keep its environments
    /// warm this long after each call.
    pub fallback_keep_alive: Duration,
    /// The replica forgets environments idle longer than this (surely reclaimed).
    pub max_idle: Duration,
    /// A function with a target is planned again at least this often (its forecast moves).
    pub recheck: Duration,
    /// At most this many pings per function in any hour (`None`: no cap). The driver's ping
    /// budget ([`FunctionInfo::ping_budget`]) caps it too: the planner sizes pools and
    /// rounds within the lower of the two, and pools within the budget's GB-s a day.
    pub max_pings_per_hour: Option<u32>,
    /// Keep environments alive through a quiet gap rather than let them go and pre-warm,
    /// when an arrival becomes likely within this long. A lone ping to a warm environment
    /// bills about 1 ms and a request, a twentieth of a new one's init at 128 MB (init is
    /// billed), and a pre-warm pays that init and misses when the forecast does. Default:
    /// every gap the idle-time histogram covers (4 hours). On the Azure sample that gave
    /// fewer cold starts than 15 minutes (738 against 858) for a lower bill, at more pings.
    pub bridge: Duration,
    /// After a round of pings, the least wait before another to make up a shortfall of
    /// environments, where the driver does not count calls in flight (where it does, the
    /// replica knows which environments calls hold and a shortfall is made up at once).
    pub shortage_gap: Duration,
    /// The most environments kept warm per function (`None`: as many as the forecast says).
    /// The frugal end of the trade-off: with 1, busy functions (kept warm by their own
    /// traffic) get no pings, and a lone ping costs about 1 ms against an init of a second or
    /// more, so sparse functions' kept environments pay for themselves.
    pub max_environments: Option<u32>,
    /// The environment of a function kept with one is replaced by a new one this long after
    /// its creation (`None`: never), when a call within the next refresh interval is more
    /// likely than not. Lambda ends environments after a few hours whatever their use (2 to
    /// 4 in the platform model, [`Lifetime::FEW_HOURS`]), and the end of a kept one meets
    /// the next call when calls come more often than pings. Default: the shortest lifetime
    /// less one refresh interval, so that the successor comes before the earliest end.
    /// Functions kept with several environments are not rotated: on the Azure sample it cost
    /// the 43 busiest functions 830 pings and saved none of their cold starts (Lambda reuses
    /// environments in an order the planner cannot steer, so the one let go is not the
    /// oldest).
    pub rotate_after: Option<Duration>,
    /// Keep at least one environment of a function warm while its last call is at most this
    /// old (`None`: no floor), as a 5-minute ping would, but only where traffic has not
    /// refreshed it. A lone ping costs about a request charge ($0.0000002): a day of them
    /// costs less than a few small inits, while each cold start it spares costs a caller a
    /// second or more. Without it, a function called a few times a day was let go an hour
    /// after each call and met most of its calls cold. A function that has shown a longer
    /// idle time is kept [`FLOOR_GAP_MARGIN`] times that long: with a day alone, a daily
    /// job whose call came later than the day before met every call cold.
    pub floor_memory: Option<Duration>,
    /// A depth the target falls below is held, on the environments that exist, for as many
    /// refreshes as the pings that keep one cost less than the init that starts it again, and
    /// at most this many (`None`: the target alone; see [`depth`]). Without it a function
    /// whose target wavered between one and two environments started its second again at
    /// each rise. 6 (about half an hour): through the gateway, fewer cold starts than 4 on
    /// both samples and a lower bill with model-loading inits (docs/warmer/history.md, "A
    /// longer held depth").
    pub depth_hold_rounds: Option<u32>,
    /// Where the driver's calls in flight fill a kept pool of at least this many environments,
    /// one more is kept, so that the next call finds one idle (`None`: the target alone).
    /// Through the gateway on the full-day sample, functions whose concurrency climbs with
    /// long calls met each new call cold: their pool follows the concurrency seen, a step
    /// behind. From 3: applied to a lone environment, every call of a timer met it (on that
    /// day with model-loading inits, $0.077 more); from 2, $0.002 more than from 3.
    pub headroom_from: Option<u32>,
    /// What a cold start is worth to the user, in multiples of the init it bills: sizes each
    /// function's pool by [`FunctionWorth::sizing_quantile`] rather than the forecast's fixed
    /// `peak_quantile` (`None`: the fixed one).
    pub cold_start_worth: Option<f64>,
    /// Keep a function's pool within 1, 2 or 4 environments while its rounds' pings (and the
    /// inits they started) bill more than the cold starts they spared are worth at
    /// `cold_start_worth` ([`ledger`]). Only where the driver counts calls in flight: it
    /// takes seeing each call start to tell whether only pings kept the environment it found.
    /// Through the gateway on both Azure samples, every bill fell (docs/warmer/history.md,
    /// "What the rounds spared").
    pub pool_caps: bool,
    /// Whether a rise seen two days running at the same minute is pre-warmed there ([`daily`]).
    /// Off, a deployment whose daily jobs move from day to day does not pay for rounds at
    /// the minutes they left (about 2,100 environments a day on the full-day sample when
    /// every one moved).
    pub daily_rises: bool,
    /// Every function's environment ends are reported from the start
    /// ([`Policy::environment_ended`](crate::policy::Policy)): its kept environment is
    /// replaced at its end, not rotated before. Otherwise a function's first report tells.
    pub ends_reported: bool,
    pub forecast: ForecastConfig,
}

impl Default for WarmerConfig {
    fn default() -> Self {
        WarmerConfig {
            min_lifetime: Duration::from_secs(300),
            refresh_margin: Duration::from_secs(2),
            lead: Duration::from_secs(60),
            keep_threshold: 0.05,
            warm_unseen: true,
            fallback_keep_alive: Duration::from_secs(3600),
            max_idle: Duration::from_secs(600),
            recheck: Duration::from_secs(60),
            max_pings_per_hour: None,
            shortage_gap: Duration::from_secs(240),
            // Every gap the idle-time histogram covers.
            bridge: ForecastConfig::default().range,
            max_environments: None,
            rotate_after: Some(Lifetime::FEW_HOURS.min - Duration::from_secs(300)),
            floor_memory: Some(Duration::from_secs(24 * 3600)),
            depth_hold_rounds: Some(6),
            headroom_from: Some(3),
            cold_start_worth: Some(5.0),
            pool_caps: true,
            daily_rises: true,
            ends_reported: false,
            forecast: ForecastConfig::default(),
        }
    }
}

impl WarmerConfig {
    /// How long an environment may idle before a round refreshes it: `min_lifetime` less
    /// `refresh_margin`.
    pub fn refresh_age(&self) -> Duration {
        self.min_lifetime - self.refresh_margin
    }

    /// The reach end of the trade-off, `warmer-peak`: pools sized for the largest peak of the
    /// last 8 hours (of at most 120 active minutes) rather than the 95th percentile of 4.
    pub fn peak() -> WarmerConfig {
        WarmerConfig {
            forecast: ForecastConfig {
                peak_quantile: Some(1.0),
                quantile_window_minutes: 480,
                min_peak_windows: 1,
                ..ForecastConfig::default()
            },
            cold_start_worth: None,
            ..WarmerConfig::default()
        }
    }

    /// The configuration a policy name stands for: `warmer` (ours), `warmer-peak` (see
    /// [`Self::peak`]), or `warmer-max<N>`, ours keeping at most N environments per function
    /// (N >= 1).
    pub fn from_name(name: &str) -> Option<WarmerConfig> {
        let max_environments = match name.strip_prefix("warmer") {
            Some("") => None,
            Some("-peak") => return Some(Self::peak()),
            Some(rest) => Some(
                rest.strip_prefix("-max")?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)?,
            ),
            None => return None,
        };
        Some(WarmerConfig {
            max_environments,
            ..WarmerConfig::default()
        })
    }

    /// The policy name of this configuration (see [`Self::from_name`]); a configuration
    /// that no name stands for is still called `warmer`.
    pub(super) fn name(&self) -> String {
        match self.max_environments {
            None if *self == Self::peak() => "warmer-peak".into(),
            None => "warmer".into(),
            Some(n) => format!("warmer-max{n}"),
        }
    }
}
