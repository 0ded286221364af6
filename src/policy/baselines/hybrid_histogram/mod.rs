//! The hybrid-histogram keep-alive policy of Shahrad et al., "Serverless in the Wild:
//! Characterizing and Optimizing the Serverless Workload at a Large Cloud Provider",
//! USENIX ATC 2020, expressed on Lambda as keep-alive pings.
//!
//! # The paper's policy
//!
//! Per application (all functions of an app share one histogram, and are loaded and unloaded
//! together), the policy keeps a histogram of idle times: the gap between the end of one
//! invocation of the app and the start of the next, in 1-minute bins over a 4-hour range.
//! After each invocation it chooses two windows from that histogram:
//! - the pre-warming window P, the head (5th percentile) of the idle times less a 10% margin:
//!   the app is unloaded after the invocation and loaded again P after it;
//! - the keep-alive window K, kept from then on until the tail (99th percentile) of the idle
//!   times plus a 10% margin. Here, as an interpretation of the paper: the margins are applied
//!   to the two ends of the window, so the app is warm from `P = head × 0.9` to
//!   `P + K = tail × 1.1` after the invocation.
//!
//! When the histogram is not representative (fewer than [`MIN_SAMPLES`] idle times, or a
//! coefficient of variation of its bin counts below [`CV_THRESHOLD`]: idle times spread over
//! many bins), the policy falls back to a standard fixed keep-alive of the whole range (4 h)
//! with no pre-warming. When more than [`OOB_THRESHOLD`] of the idle times fall beyond the
//! range, the paper forecasts the next idle time with ARIMA and warms from 85% to 115% of the
//! forecast ([`FORECAST_MARGIN`]).
//!
//! **ARIMA is not implemented here.** The forecast is a documented stand-in: the geometric mean
//! of the last [`FORECAST_WINDOW`] out-of-bound idle times (a level forecast of log idle times,
//! robust to one outlier). Apps whose idle times mostly exceed 4 hours are rare, and in an
//! 8-hour trace they have at most one idle time, so the stand-in matters little for the
//! figures; say so when quoting them.
//!
//! # On Lambda
//!
//! Lambda, not warmgate, unloads environments; the policy can only ping. An environment stays
//! warm at least [`MIN_WARM`] after its last use (the platform model's idle reclaim is uniform
//! 5 to 10 minutes), so keeping an app warm over `[t + P, t + P + K]` after an invocation
//! ending at `t` means: the invocation itself keeps its environment until `t + MIN_WARM`; if
//! that is before `t + P`, a first ping at `t + P - PING_LEAD` (a cold start finished before
//! `t + P`), then a ping every [`PING_INTERVAL`] while the warmth the last ping bought ends
//! before `t + P + K`. Every function of the app gets each ping (`count` 1, target 0): the
//! app's functions are separate Lambda functions. A new invocation resets the schedule. A
//! ping cannot unload, so the environment of the invocation stays warm for its 5 to 10 minutes
//! even when the paper would unload it at once: that costs the user nothing on Lambda.
//!
//! # Arrival order
//!
//! Observations come at completion, so an invocation that started early and ran long arrives
//! after shorter ones that started later. The policy keeps the union of the app's recent busy
//! intervals ([`TRACKED_INTERVALS`] of them) and the idle times between them; a late report
//! that covers a recorded gap takes that idle time back out of the histogram and puts in the
//! gaps that remain. History older than the tracked intervals is final: a report of an
//! invocation that ended before it is ignored. Concurrent invocations create no idle time.
//!
//! Pings, throttled requests (they did not run) and functions with no target are not idle-time
//! evidence; invocations of any target of a function count for its app.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::clock::Time;
use crate::policy::{Action, FunctionId, FunctionInfo, KeptBy, Observation, Policy};

/// Width of a histogram bin: 1 minute (the paper).
pub const BIN: Duration = Duration::from_secs(60);
/// Range of the histogram: 4 hours (the paper); idle times beyond it are out of bounds.
pub const RANGE: Duration = Duration::from_secs(4 * 3600);
/// Pre-warming at the histogram's head, its 5th percentile (the paper).
pub const HEAD_PERCENTILE: f64 = 0.05;
/// Keep-alive to the histogram's tail, its 99th percentile (the paper).
pub const TAIL_PERCENTILE: f64 = 0.99;
/// Pre-warming 10% earlier and keep-alive 10% longer than the histogram says (the paper).
pub const HISTOGRAM_MARGIN: f64 = 0.10;
/// Below this coefficient of variation of the bin counts the histogram is not representative
/// (the paper: 2).
pub const CV_THRESHOLD: f64 = 2.0;
/// Fewer idle times than this and the histogram is not representative. The paper asks for
/// "enough" samples without a figure that we know of: 5 is our assumption (small enough to
/// learn within a few hours of an 8-hour trace; the coefficient-of-variation test alone would
/// accept a single sample).
pub const MIN_SAMPLES: u32 = 5;
/// Above this share of out-of-bound idle times the policy forecasts instead. The paper names
/// a threshold; 50% is our assumption (public reimplementations of the policy use it too).
pub const OOB_THRESHOLD: f64 = 0.5;
/// The forecast's margin: warm from `(1 - m) × F` to `(1 + m) × F` for a forecast `F`. 15% as
/// we read the paper (public reimplementations use the same figure).
pub const FORECAST_MARGIN: f64 = 0.15;
/// The ARIMA stand-in forecasts from this many recent out-of-bound idle times (assumption).
pub const FORECAST_WINDOW: usize = 8;
/// The least time Lambda keeps an idle environment: 5 minutes, an assumption from published
/// measurements (5 to 7 min, about 10 min in 2019) and the platform model's default (5 to 10
/// min, uniform). AWS publishes no figure.
pub const MIN_WARM: Duration = Duration::from_secs(5 * 60);
/// Time between two pings of one warm window: under [`MIN_WARM`] so that the environment
/// never idles long enough to be reclaimed (assumption: 4 min, one minute of slack).
pub const PING_INTERVAL: Duration = Duration::from_secs(4 * 60);
/// The first ping of a pre-warm comes this early, so that its cold start is over at `t + P`
/// (assumption: 1 min; on-demand init is capped at 10 s, then retried inside the invoke).
pub const PING_LEAD: Duration = Duration::from_secs(60);
/// Busy intervals per app kept to place late reports (assumption; 16 intervals of an app
/// cover any invocation that completes after fewer than 16 later invocations did).
pub const TRACKED_INTERVALS: usize = 16;

/// The policy's parameters; [`Default`] gives the paper's (and the assumptions above).
#[derive(Debug, Clone, PartialEq)]
pub struct HybridHistogramConfig {
    pub bin: Duration,
    pub range: Duration,
    pub head_percentile: f64,
    pub tail_percentile: f64,
    pub histogram_margin: f64,
    pub cv_threshold: f64,
    pub min_samples: u32,
    pub oob_threshold: f64,
    pub forecast_margin: f64,
    pub forecast_window: usize,
    pub min_warm: Duration,
    pub ping_interval: Duration,
    pub ping_lead: Duration,
}

impl Default for HybridHistogramConfig {
    fn default() -> Self {
        HybridHistogramConfig {
            bin: BIN,
            range: RANGE,
            head_percentile: HEAD_PERCENTILE,
            tail_percentile: TAIL_PERCENTILE,
            histogram_margin: HISTOGRAM_MARGIN,
            cv_threshold: CV_THRESHOLD,
            min_samples: MIN_SAMPLES,
            oob_threshold: OOB_THRESHOLD,
            forecast_margin: FORECAST_MARGIN,
            forecast_window: FORECAST_WINDOW,
            min_warm: MIN_WARM,
            ping_interval: PING_INTERVAL,
            ping_lead: PING_LEAD,
        }
    }
}

/// Where an app's windows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSource {
    /// Not representative: fixed keep-alive of the whole range, no pre-warming.
    Fallback,
    /// The idle-time histogram's head and tail.
    Histogram,
    /// Mostly out-of-bound idle times: the forecast (the ARIMA stand-in).
    Forecast,
}

/// An app's windows after an invocation: warm from `prewarm` to `prewarm + keep_alive` after
/// the invocation's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    pub source: WindowSource,
    pub prewarm: Duration,
    pub keep_alive: Duration,
}

/// The hybrid-histogram policy, as pings. See the module documentation.
#[derive(Debug, Clone)]
pub struct HybridHistogram {
    config: HybridHistogramConfig,
    apps: Vec<App>,
    /// Names of the apps, in the order of `apps`.
    app_names: Vec<String>,
    /// The app of each function.
    app_of: Vec<usize>,
    /// Every scheduled ping, as (time, app); an app has at most one.
    schedule: BTreeSet<(Time, usize)>,
}

impl Default for HybridHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl HybridHistogram {
    /// The policy with the paper's parameters.
    pub fn new() -> Self {
        Self::with_config(HybridHistogramConfig::default())
    }

    /// The policy with other parameters.
    ///
    /// # Panics
    /// If the bin or the ping interval is zero, the range is shorter than a bin, a percentile
    /// is not in (0, 1], or a margin is not in [0, 1).
    pub fn with_config(config: HybridHistogramConfig) -> Self {
        for p in [config.head_percentile, config.tail_percentile] {
            assert!(p > 0.0 && p <= 1.0, "percentiles must be in (0, 1]");
        }
        for m in [config.histogram_margin, config.forecast_margin] {
            assert!((0.0..1.0).contains(&m), "margins must be in [0, 1)");
        }
        assert!(
            !config.bin.is_zero(),
            "the histogram's bin must be positive"
        );
        assert!(
            config.range >= config.bin,
            "the histogram's range must hold a bin"
        );
        assert!(
            !config.ping_interval.is_zero(),
            "the ping interval must be positive"
        );
        HybridHistogram {
            config,
            apps: Vec::new(),
            app_names: Vec::new(),
            app_of: Vec::new(),
            schedule: BTreeSet::new(),
        }
    }

    /// The windows `app` would use after an invocation now, if the app is known.
    pub fn windows(&self, app: &str) -> Option<Windows> {
        let i = self.app_names.iter().position(|a| a == app)?;
        Some(self.apps[i].windows)
    }

    /// Idle times the app's histogram holds (in range, out of bounds), if the app is known.
    pub fn idle_time_count(&self, app: &str) -> Option<(u32, u32)> {
        let i = self.app_names.iter().position(|a| a == app)?;
        let h = &self.apps[i].histogram;
        Some((h.in_range, h.out_of_bounds))
    }

    /// Recomputes app `a`'s next ping from its latest end, its windows and its warmth.
    fn replan(&mut self, a: usize) {
        let app = &mut self.apps[a];
        if let Some(at) = app.next_ping.take() {
            self.schedule.remove(&(at, a));
        }
        let Some(&(_, end)) = app.busy.back() else {
            return;
        };
        let cfg = &self.config;
        app.warm_until = app.warm_until.max(end + cfg.min_warm);
        let from = end + app.windows.prewarm;
        let until = from + app.windows.keep_alive;
        app.next_ping = if app.warm_until >= until {
            None
        } else if app.warm_until < from {
            Some(from.saturating_sub(cfg.ping_lead))
        } else {
            // Warm now: ping again an interval after the last warming use.
            Some(app.warm_until - cfg.min_warm + cfg.ping_interval)
        };
        if let Some(at) = app.next_ping {
            self.schedule.insert((at, a));
        }
    }
}

impl Policy for HybridHistogram {
    fn name(&self) -> String {
        "hybrid-histogram".into()
    }

    fn start(&mut self, functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        let bins = (self.config.range.as_nanos() / self.config.bin.as_nanos()) as usize;
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        self.apps.clear();
        self.app_names.clear();
        self.schedule.clear();
        self.app_of = functions
            .iter()
            .enumerate()
            .map(|(f, info)| {
                let a = *index.entry(info.app.as_str()).or_insert_with(|| {
                    self.app_names.push(info.app.clone());
                    self.apps.push(App::new(bins, &self.config));
                    self.apps.len() - 1
                });
                if !info.targets.is_empty() {
                    self.apps[a].functions.push(f);
                }
                a
            })
            .collect();
        Vec::new()
    }

    fn observe(&mut self, o: &Observation) {
        if o.ping || o.throttled {
            return;
        }
        let Some(&a) = self.app_of.get(o.function) else {
            return;
        };
        let end = o.arrived + o.init.unwrap_or_default() + o.duration;
        if self.apps[a].insert_busy(o.arrived, end, &self.config) {
            self.replan(a);
        }
    }

    fn act(&mut self, now: Time) -> Vec<Action> {
        let due: Vec<usize> = self
            .schedule
            .range(..=(now, usize::MAX))
            .map(|&(_, a)| a)
            .collect();
        let mut actions = Vec::new();
        for a in due {
            let app = &mut self.apps[a];
            actions.extend(app.functions.iter().map(|&function| Action::Ping {
                function,
                target: 0,
                count: 1,
                kept_by: KeptBy::Schedule,
            }));
            app.warm_until = app.warm_until.max(now + self.config.min_warm);
            self.replan(a);
        }
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        self.schedule.first().map(|&(at, _)| at)
    }
}

/// What the policy knows of one app.
#[derive(Debug, Clone)]
struct App {
    /// Functions to ping (those with a target).
    functions: Vec<FunctionId>,
    histogram: IdleHistogram,
    /// Recent busy intervals (start, end) of the app, sorted, disjoint and not touching.
    busy: VecDeque<(Time, Time)>,
    /// End of the last interval dropped from `busy`: history before it is final.
    floor: Option<Time>,
    /// Windows from the histogram as it is now.
    windows: Windows,
    /// The app is known to have a warm environment until then.
    warm_until: Time,
    next_ping: Option<Time>,
}

impl App {
    fn new(bins: usize, cfg: &HybridHistogramConfig) -> Self {
        let histogram = IdleHistogram::new(bins);
        App {
            functions: Vec::new(),
            // No idle time yet: the fallback.
            windows: histogram.windows(cfg),
            histogram,
            busy: VecDeque::new(),
            floor: None,
            warm_until: Duration::ZERO,
            next_ping: None,
        }
    }

    /// The idle gaps between the tracked busy intervals (and after the floor).
    fn gaps(&self) -> Vec<(Time, Time)> {
        let mut gaps = Vec::with_capacity(self.busy.len());
        let mut previous_end = self.floor;
        for &(start, end) in &self.busy {
            if let Some(p) = previous_end.filter(|&p| start > p) {
                gaps.push((p, start));
            }
            previous_end = Some(end);
        }
        gaps
    }

    /// Adds a busy interval; true if the app's history changed.
    fn insert_busy(&mut self, start: Time, end: Time, cfg: &HybridHistogramConfig) -> bool {
        let mut start = start;
        if let Some(floor) = self.floor {
            if end <= floor {
                return false;
            }
            start = start.max(floor);
        }
        if self.busy.iter().any(|&(s, e)| s <= start && end <= e) {
            return false;
        }
        let before = self.gaps();
        let (mut start, mut end) = (start, end);
        let mut merged = VecDeque::with_capacity(self.busy.len() + 1);
        let mut placed = false;
        for &(s, e) in &self.busy {
            if e < start {
                merged.push_back((s, e));
            } else if s > end {
                if !placed {
                    merged.push_back((start, end));
                    placed = true;
                }
                merged.push_back((s, e));
            } else {
                start = start.min(s);
                end = end.max(e);
            }
        }
        if !placed {
            merged.push_back((start, end));
        }
        self.busy = merged;
        let after = self.gaps();
        let mut changed = false;
        for gap in before.iter().filter(|g| !after.contains(g)) {
            self.histogram.remove(gap.1 - gap.0, cfg);
            changed = true;
        }
        for gap in after.iter().filter(|g| !before.contains(g)) {
            self.histogram.add(gap.1 - gap.0, cfg);
            changed = true;
        }
        while self.busy.len() > TRACKED_INTERVALS {
            let (_, end) = self.busy.pop_front().expect("more than zero intervals");
            self.floor = Some(end);
        }
        if changed {
            self.windows = self.histogram.windows(cfg);
        }
        true
    }
}

/// An app's idle times: a histogram of those in range, a count and the recent values of
/// those beyond it.
#[derive(Debug, Clone)]
struct IdleHistogram {
    bins: Vec<u32>,
    in_range: u32,
    /// Sum of the squared bin counts, for the coefficient of variation.
    sum_squares: u64,
    out_of_bounds: u32,
    /// The latest out-of-bound idle times, oldest first.
    recent_out_of_bounds: VecDeque<Duration>,
}

impl IdleHistogram {
    fn new(bins: usize) -> Self {
        IdleHistogram {
            bins: vec![0; bins.max(1)],
            in_range: 0,
            sum_squares: 0,
            out_of_bounds: 0,
            recent_out_of_bounds: VecDeque::new(),
        }
    }

    fn bin_of(&self, idle: Duration, cfg: &HybridHistogramConfig) -> Option<usize> {
        let i = idle.as_nanos() / cfg.bin.as_nanos();
        (i < self.bins.len() as u128).then_some(i as usize)
    }

    fn add(&mut self, idle: Duration, cfg: &HybridHistogramConfig) {
        match self.bin_of(idle, cfg) {
            Some(i) => {
                self.sum_squares += 2 * u64::from(self.bins[i]) + 1;
                self.bins[i] += 1;
                self.in_range += 1;
            }
            None => {
                self.out_of_bounds += 1;
                self.recent_out_of_bounds.push_back(idle);
                while self.recent_out_of_bounds.len() > cfg.forecast_window.max(1) {
                    self.recent_out_of_bounds.pop_front();
                }
            }
        }
    }

    fn remove(&mut self, idle: Duration, cfg: &HybridHistogramConfig) {
        match self.bin_of(idle, cfg) {
            Some(i) if self.bins[i] > 0 => {
                self.sum_squares -= 2 * u64::from(self.bins[i]) - 1;
                self.bins[i] -= 1;
                self.in_range -= 1;
            }
            Some(_) => {}
            None => {
                self.out_of_bounds = self.out_of_bounds.saturating_sub(1);
                if let Some(i) = self.recent_out_of_bounds.iter().rposition(|&d| d == idle) {
                    self.recent_out_of_bounds.remove(i);
                }
            }
        }
    }

    /// Coefficient of variation of the bin counts (population standard deviation over mean).
    fn coefficient_of_variation(&self) -> f64 {
        if self.in_range == 0 {
            return 0.0;
        }
        let n = self.bins.len() as f64;
        let mean = f64::from(self.in_range) / n;
        let variance = (self.sum_squares as f64 / n - mean * mean).max(0.0);
        variance.sqrt() / mean
    }

    /// The bin that holds the `p` quantile of the in-range idle times.
    fn percentile_bin(&self, p: f64) -> usize {
        let needed = ((p * f64::from(self.in_range)) - 1e-9).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &count) in self.bins.iter().enumerate() {
            seen += u64::from(count);
            if seen >= needed {
                return i;
            }
        }
        self.bins.len() - 1
    }

    /// The stand-in for the paper's ARIMA forecast: the geometric mean of the recent
    /// out-of-bound idle times.
    fn forecast(&self) -> Option<Duration> {
        if self.recent_out_of_bounds.is_empty() {
            return None;
        }
        let mean_log = self
            .recent_out_of_bounds
            .iter()
            .map(|d| d.as_secs_f64().max(1.0).ln())
            .sum::<f64>()
            / self.recent_out_of_bounds.len() as f64;
        Some(Duration::from_secs_f64(mean_log.exp()))
    }

    fn windows(&self, cfg: &HybridHistogramConfig) -> Windows {
        let fallback = Windows {
            source: WindowSource::Fallback,
            prewarm: Duration::ZERO,
            keep_alive: cfg.range,
        };
        let total = self.in_range + self.out_of_bounds;
        if total < cfg.min_samples.max(1) {
            return fallback;
        }
        if f64::from(self.out_of_bounds) / f64::from(total) > cfg.oob_threshold {
            return match self.forecast() {
                Some(f) => Windows {
                    source: WindowSource::Forecast,
                    prewarm: f.mul_f64(1.0 - cfg.forecast_margin),
                    keep_alive: f.mul_f64(2.0 * cfg.forecast_margin),
                },
                None => fallback,
            };
        }
        if self.in_range == 0 || self.coefficient_of_variation() < cfg.cv_threshold {
            return fallback;
        }
        let head = self.percentile_bin(cfg.head_percentile) as u32;
        let tail = self.percentile_bin(cfg.tail_percentile) as u32 + 1;
        // The head's bin's lower edge and the tail's bin's upper edge: both err on the warm side.
        let prewarm = (cfg.bin * head).mul_f64(1.0 - cfg.histogram_margin);
        let until = (cfg.bin * tail).mul_f64(1.0 + cfg.histogram_margin);
        Windows {
            source: WindowSource::Histogram,
            prewarm,
            keep_alive: until.saturating_sub(prewarm),
        }
    }
}

#[cfg(test)]
mod tests;
