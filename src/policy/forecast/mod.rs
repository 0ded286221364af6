//! Demand forecasts per function, learned online from the invocations the driver sees.
//!
//! Two models, neither needing an outside service (pure code: observations and `now` in,
//! forecasts out; ARCHITECTURE.md invariant 1):
//!
//! - an **idle-time histogram** (as in Shahrad et al., USENIX ATC 2020): the gaps between the
//!   end of the function's last busy period and its next arrival, in 1-minute bins over
//!   4 hours. Given how long the function has been idle, it says how likely an arrival is
//!   within a window ([`IdleHistogram::probability_within`]) and from when on one becomes
//!   likely ([`IdleHistogram::likely_from`]). It serves the sparse functions.
//! - a **concurrency forecast**: the peak concurrency of each recent minute (counted from the
//!   executions' intervals as they are reported, so that one reported after those it
//!   overlaps still counts with them), an hour-of-day profile learned online, and a
//!   short-term trend. The forecast of the environments needed over the next minutes is a
//!   high quantile (95th) of the peaks of the recent active windows of that length (so a
//!   periodic burst is remembered across its quiet gap, and a one-off spike is not paid
//!   for), raised by the whole environments the trend adds (only for a function active in
//!   most recent minutes: a sparse function's burst out of quiet is not a trend) and by the
//!   profile of the coming hour where an earlier day taught one (`hour_profile`). In an
//!   8-hour trace the profile never applies.
//!
//! [`FunctionForecast::demand`] answers, per function and horizon, how many environments will
//! be needed and how likely it is that any will.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Time;

const MINUTE: Duration = Duration::from_secs(60);
const HOURS_PER_DAY: u64 = 24;

/// The forecast's parameters; [`Default`] gives ours.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Width of an idle-time bin: 1 minute (Shahrad et al.).
    pub bin: Duration,
    /// Range of the idle-time histogram: 4 hours (Shahrad et al.); longer gaps are out of
    /// bounds.
    pub range: Duration,
    /// Below this many idle times the histogram gives no probability (the caller falls back).
    pub min_samples: u32,
    /// Minutes over which the recent peak concurrency is taken.
    pub peak_window_minutes: u64,
    /// The last this-many active minutes also count for the peak, however long ago (a burst
    /// every 15 minutes is remembered across its quiet gap).
    pub burst_memory: usize,
    /// Minutes over which the short-term trend (least-squares slope of minute peaks) is fit.
    pub trend_window_minutes: u64,
    /// Relative headroom on the forecast number of environments.
    pub headroom: f64,
    /// The trend applies only when at least this many tenths of the trend window's minutes
    /// saw a start.
    pub trend_min_active_tenths: u64,
    /// Size by this quantile of the peaks of recent active windows of the horizon's length
    /// (`None`: the recent maximum, over `peak_window_minutes` and `burst_memory`). One rare
    /// spike then costs no pings for the next half hour, while a peak seen in more than 5% of
    /// windows is kept.
    pub peak_quantile: Option<f64>,
    /// Windows for the quantile: the last this-many minutes (8 hours), within the 120 most
    /// recent minutes with a start that the forecast keeps (2 hours for a busy function): a
    /// function that bursts every hour or two keeps its bursts in view.
    pub quantile_window_minutes: u64,
    /// The quantile never sizes for a peak reached fewer than this many times in those
    /// windows: a spike seen once is not paid for with hours of pings (with few active
    /// windows, or a quantile near 1, it otherwise would be); one seen twice is a pattern.
    /// Adjacent windows count once unless they are three or more (see [`occurrences`]): a
    /// one-off burst that straddles a window boundary was otherwise kept for hours.
    pub min_peak_windows: usize,
    /// Whether the coming hour's profile (the peak of that hour on the latest earlier day)
    /// raises the forecast.
    pub hour_profile: bool,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            bin: MINUTE,
            range: Duration::from_secs(4 * 3600),
            min_samples: 3,
            peak_window_minutes: 30,
            burst_memory: 6,
            trend_window_minutes: 10,
            headroom: 0.0,
            trend_min_active_tenths: 8,
            peak_quantile: Some(0.95),
            quantile_window_minutes: 480,
            min_peak_windows: 2,
            hour_profile: true,
        }
    }
}

/// Idle times of one function: end of a busy period to the next arrival.
#[derive(Debug, Clone)]
pub struct IdleHistogram {
    bin: Duration,
    bins: Vec<u32>,
    out_of_bounds: u32,
    total: u32,
}

impl IdleHistogram {
    pub fn new(bin: Duration, range: Duration) -> Self {
        assert!(!bin.is_zero(), "an idle-time bin must be positive");
        let n = (range.as_nanos() / bin.as_nanos()).max(1) as usize;
        IdleHistogram {
            bin,
            bins: vec![0; n],
            out_of_bounds: 0,
            total: 0,
        }
    }

    fn bin_of(&self, d: Duration) -> usize {
        (d.as_nanos() / self.bin.as_nanos()) as usize
    }

    pub fn record(&mut self, idle: Duration) {
        let b = self.bin_of(idle);
        match self.bins.get_mut(b) {
            Some(count) => *count = count.saturating_add(1),
            None => self.out_of_bounds = self.out_of_bounds.saturating_add(1),
        }
        self.total = self.total.saturating_add(1);
    }

    /// Idle times recorded.
    pub fn samples(&self) -> u32 {
        self.total
    }

    /// Probability of an arrival within `(elapsed, elapsed + window]` of idle, given none by
    /// `elapsed`, at bin resolution (the bin holding `elapsed` counts whole). Zero past the
    /// histogram's range or when no recorded idle time was as long.
    pub fn probability_within(&self, elapsed: Duration, window: Duration) -> f64 {
        let from = self.bin_of(elapsed);
        if from >= self.bins.len() {
            return 0.0;
        }
        let to = self.bin_of(elapsed + window).min(self.bins.len() - 1);
        let within: u64 = self.bins[from..=to].iter().map(|&c| u64::from(c)).sum();
        let beyond: u64 = self.bins[from..].iter().map(|&c| u64::from(c)).sum::<u64>()
            + u64::from(self.out_of_bounds);
        if beyond == 0 {
            0.0
        } else {
            within as f64 / beyond as f64
        }
    }

    /// The least idle time at or after `elapsed` (on the bin grid) from which an arrival
    /// within `window` has probability at least `threshold`, if any within the range.
    pub fn likely_from(
        &self,
        elapsed: Duration,
        window: Duration,
        threshold: f64,
    ) -> Option<Duration> {
        let first = self.bin_of(elapsed);
        (first..self.bins.len())
            .map(|b| {
                if b == first {
                    elapsed
                } else {
                    self.bin * b as u32
                }
            })
            .find(|&e| self.probability_within(e, window) >= threshold)
    }
}

/// Minutes of executions kept to count their overlaps again, as later reports come in.
const OVERLAP_LOOKBACK_MINUTES: u64 = 5;

/// Real executions as intervals, to count how many ran at once.
///
/// Reports come as executions end, so when one is reported, those that started before it
/// and outlast it are not known yet: the count of executions running at its start falls
/// short, the more so the busier the function (a third short at 30 at once on the Azure
/// sample). Each report adds its interval here, and the minutes of the last
/// `OVERLAP_LOOKBACK_MINUTES` are swept again once a minute, counting every execution
/// reported since. Executions longer than the lookback count only in its minutes.
#[derive(Debug, Clone, Default)]
struct Overlaps {
    /// +1 at each start, -1 at each end, at or after `from`; unsorted between sweeps.
    events: Vec<(Time, i32)>,
    /// Executions running at `from`.
    base: i32,
    from: Time,
    /// The minute of the latest sweep.
    swept: Option<u64>,
}

impl Overlaps {
    fn add(&mut self, arrived: Time, end: Time) {
        if end <= self.from {
            return;
        }
        if arrived < self.from {
            self.base += 1;
        } else {
            self.events.push((arrived, 1));
        }
        self.events.push((end, -1));
    }

    /// Whether the minute of `now` is not swept yet.
    fn due(&self, now: Time) -> bool {
        self.swept != Some(ConcurrencyForecast::minute(now))
    }

    /// The peak of executions running in each minute from `from` with a start, counted over
    /// every execution reported so far; then forgets what is older than the lookback.
    fn sweep(&mut self, now: Time) -> Vec<(u64, u32)> {
        // At equal times an end comes before a start: the freed environment is reused.
        self.events.sort_unstable();
        let mut running = self.base;
        let mut peaks: Vec<(u64, u32)> = Vec::new();
        for &(t, delta) in &self.events {
            running += delta;
            if delta > 0 {
                let m = ConcurrencyForecast::minute(t);
                let now_running = running.max(0) as u32;
                match peaks.last_mut() {
                    Some((pm, peak)) if *pm == m => *peak = (*peak).max(now_running),
                    _ => peaks.push((m, now_running)),
                }
            }
        }
        let minute = ConcurrencyForecast::minute(now);
        self.swept = Some(minute);
        let keep_from = MINUTE * minute.saturating_sub(OVERLAP_LOOKBACK_MINUTES) as u32;
        if keep_from > self.from {
            let split = self.events.partition_point(|&(t, _)| t < keep_from);
            self.base += self.events.drain(..split).map(|(_, d)| d).sum::<i32>();
            self.from = keep_from;
        }
        peaks
    }
}

/// Peak concurrency per minute, an hour-of-day profile, and the rate of busy time.
#[derive(Debug, Clone, Default)]
pub struct ConcurrencyForecast {
    /// (minute index, peak concurrency) of recent minutes with any start, oldest first.
    minutes: VecDeque<(u64, u32)>,
    /// Per hour of day: (day last updated, peak seen that hour on that day, peak of the
    /// latest earlier day that saw the hour).
    profile: Vec<(u64, u32, u32)>,
    /// Busy seconds of starts per minute: (minute index, seconds), last two minutes.
    busy: VecDeque<(u64, f64)>,
}

impl ConcurrencyForecast {
    fn minute(t: Time) -> u64 {
        t.as_secs() / 60
    }

    /// A start at `at` with `concurrency` executions running (itself included), busy for
    /// `busy`.
    pub fn record_start(&mut self, at: Time, concurrency: u32, busy: Duration) {
        let m = Self::minute(at);
        self.raise_peak(m, concurrency);
        match self.busy.iter_mut().find(|(mm, _)| *mm == m) {
            Some((_, s)) => *s += busy.as_secs_f64(),
            None => {
                self.busy.push_back((m, busy.as_secs_f64()));
                self.busy.make_contiguous().sort_by_key(|&(mm, _)| mm);
                while self.busy.len() > 3 {
                    self.busy.pop_front();
                }
            }
        }
    }

    /// At least `concurrency` executions ran at once in minute `m`, one of them starting.
    fn raise_peak(&mut self, m: u64, concurrency: u32) {
        match self.minutes.iter_mut().rev().find(|(mm, _)| *mm == m) {
            Some((_, peak)) => *peak = (*peak).max(concurrency),
            None => {
                let pos = self.minutes.partition_point(|&(mm, _)| mm < m);
                self.minutes.insert(pos, (m, concurrency));
                // Keep two hours of active minutes at most.
                while self.minutes.len() > 120 {
                    self.minutes.pop_front();
                }
            }
        }
        if self.profile.is_empty() {
            self.profile = vec![(u64::MAX, 0, 0); HOURS_PER_DAY as usize];
        }
        let (day, hour) = (m / (60 * HOURS_PER_DAY), (m / 60) % HOURS_PER_DAY);
        let slot = &mut self.profile[hour as usize];
        if slot.0 != day {
            if slot.0 != u64::MAX && slot.0 < day {
                slot.2 = slot.1;
            }
            *slot = (day, 0, slot.2);
        }
        slot.1 = slot.1.max(concurrency);
    }

    /// The most executions seen running at once in the minute of `at`, one of them starting
    /// (0 once the minute is no longer kept: two hours of active minutes).
    pub fn peak_in(&self, at: Time) -> u32 {
        let m = Self::minute(at);
        self.minutes
            .iter()
            .rev()
            .find(|&&(mm, _)| mm == m)
            .map_or(0, |&(_, peak)| peak)
    }

    /// Expected executions in flight now: the busy seconds started in the last full minute,
    /// per second.
    pub fn in_flight(&self, now: Time) -> f64 {
        let m = Self::minute(now);
        self.busy
            .iter()
            .find(|(mm, _)| *mm + 1 == m)
            .map_or(0.0, |&(_, s)| s / 60.0)
    }

    /// Peak concurrency in the last `window` minutes before `now`, and over the last
    /// `burst_memory` active minutes.
    fn recent_peak(&self, now: Time, cfg: &ForecastConfig) -> u32 {
        let m = Self::minute(now);
        let windowed = self
            .minutes
            .iter()
            .rev()
            .take_while(|(mm, _)| *mm + cfg.peak_window_minutes >= m)
            .map(|&(_, p)| p)
            .max()
            .unwrap_or(0);
        let remembered = self
            .minutes
            .iter()
            .rev()
            .take(cfg.burst_memory)
            .map(|&(_, p)| p)
            .max()
            .unwrap_or(0);
        windowed.max(remembered)
    }

    /// The `q` quantile of the peaks of the active windows of `horizon` (those with a start)
    /// over the last `quantile_window_minutes`, and at least the current window's peak.
    fn window_peak_quantile(
        &self,
        now: Time,
        horizon: Duration,
        q: f64,
        cfg: &ForecastConfig,
    ) -> f64 {
        let m = Self::minute(now);
        let w = (horizon.as_secs() / 60).max(1);
        let n = (cfg.quantile_window_minutes / w).max(1);
        let mut peaks = vec![0u32; n as usize];
        for &(mm, p) in self.minutes.iter().rev() {
            let age = m.saturating_sub(mm);
            let i = age / w;
            if i >= n {
                break;
            }
            peaks[i as usize] = peaks[i as usize].max(p);
        }
        let current = f64::from(peaks[0]);
        // Sized for when the function is called at all: quiet windows say nothing of how many
        // environments a call finds busy.
        let mut levels: Vec<u32> = peaks.iter().copied().filter(|&p| p > 0).collect();
        if levels.is_empty() {
            return current;
        }
        levels.sort_unstable();
        let n = levels.len();
        levels.truncate(((q * n as f64).ceil() as usize).clamp(1, n));
        levels.dedup();
        // The quantile's level, or the largest below it that recurs.
        let recurring = levels
            .iter()
            .rev()
            .copied()
            .find(|&level| occurrences(&peaks, level) >= cfg.min_peak_windows.max(1))
            .unwrap_or(0);
        f64::from(recurring).max(current)
    }

    /// Least-squares slope of minute peaks (0 for a minute with none) over the trend window,
    /// in environments per minute.
    fn trend(&self, now: Time, cfg: &ForecastConfig) -> f64 {
        let m = Self::minute(now);
        let n = cfg.trend_window_minutes;
        if n < 2 || m < n {
            return 0.0;
        }
        // A rise out of quiet (a sparse function's burst) is not a trend: fit only a
        // function active in most minutes of the window.
        let active = self
            .minutes
            .iter()
            .rev()
            .take_while(|(mm, _)| *mm + n >= m)
            .filter(|(mm, _)| *mm < m)
            .count() as u64;
        if active * 10 < n * cfg.trend_min_active_tenths {
            return 0.0;
        }
        let points: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let mm = m - n + i;
                let peak = self
                    .minutes
                    .iter()
                    .rev()
                    .find(|(x, _)| *x == mm)
                    .map_or(0, |&(_, p)| p);
                (i as f64, f64::from(peak))
            })
            .collect();
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n as f64;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        if sxx == 0.0 {
            0.0
        } else {
            sxy / sxx
        }
    }

    /// The profile's peak for the hour of `at`, if an earlier day taught one.
    fn profile_peak(&self, at: Time) -> u32 {
        let hour = (Self::minute(at) / 60) % HOURS_PER_DAY;
        self.profile.get(hour as usize).map_or(0, |slot| slot.2)
    }

    /// Environments needed over `(now, now + horizon]`: the recent peak, raised by the whole
    /// environments the positive trend adds over the horizon and by the coming hour's
    /// profile, with headroom.
    pub fn environments(&self, now: Time, horizon: Duration, cfg: &ForecastConfig) -> u32 {
        let recent = match cfg.peak_quantile {
            None => f64::from(self.recent_peak(now, cfg)),
            Some(q) => self.window_peak_quantile(now, horizon, q, cfg),
        };
        let minutes = horizon.as_secs_f64() / 60.0;
        // Only the whole environments the trend predicts: the slope of a function called
        // about once a minute is noise around 0, and any positive part of it, rounded up,
        // kept a second environment it never needed (docs/warmer/history.md, "The trend's whole
        // environments").
        let rise = (self.trend(now, cfg) * minutes).max(0.0).floor();
        let trended = recent + rise;
        let profiled = if cfg.hour_profile {
            f64::from(self.profile_peak(now + horizon))
        } else {
            0.0
        };
        (trended.max(profiled) * (1.0 + cfg.headroom)).ceil() as u32
    }
}

/// Demand forecast for one function over a horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Probability of at least one arrival within the horizon; `None` while the idle-time
    /// histogram has too few samples to say.
    pub probability: Option<f64>,
    /// Environments needed if the function is called within the horizon.
    pub environments: u32,
}

/// Everything the forecast knows of one function.
#[derive(Debug, Clone)]
pub struct FunctionForecast {
    pub idle: IdleHistogram,
    pub concurrency: ConcurrencyForecast,
    /// End of the latest busy period seen (real invocations only).
    last_end: Option<Time>,
    /// The longest idle time seen, however long (the histogram stops at its range).
    longest_idle: Duration,
    overlaps: Overlaps,
}

impl FunctionForecast {
    pub fn new(cfg: &ForecastConfig) -> Self {
        FunctionForecast {
            idle: IdleHistogram::new(cfg.bin, cfg.range),
            concurrency: ConcurrencyForecast::default(),
            last_end: None,
            longest_idle: Duration::ZERO,
            overlaps: Overlaps::default(),
        }
    }

    /// Whether a real invocation was seen.
    pub fn seen(&self) -> bool {
        self.last_end.is_some()
    }

    pub fn last_end(&self) -> Option<Time> {
        self.last_end
    }

    /// The longest idle time seen: from the end of a busy period to the next arrival.
    pub fn longest_idle(&self) -> Duration {
        self.longest_idle
    }

    /// A real invocation from `arrived` to `end`, which found at least `concurrency`
    /// executions running (itself included; see `Overlaps` for the ones it could not know
    /// of). Reports come in completion order: one that starts within the latest busy period
    /// makes no idle time.
    pub fn record(&mut self, arrived: Time, end: Time, concurrency: u32) {
        self.overlaps.add(arrived, end);
        if self.overlaps.due(end) {
            for (m, peak) in self.overlaps.sweep(end) {
                self.concurrency.raise_peak(m, peak);
            }
        }
        if let Some(last) = self.last_end {
            if arrived > last {
                self.idle.record(arrived - last);
                self.longest_idle = self.longest_idle.max(arrived - last);
            }
        }
        self.last_end = Some(self.last_end.map_or(end, |l| l.max(end)));
        self.concurrency
            .record_start(arrived, concurrency, end.saturating_sub(arrived));
    }

    /// A real execution started at `now` with `running` executions in flight, itself
    /// included, as a driver that sees them leave counts them (exact, where the reports of
    /// calls as they end fall short for calls longer than the overlaps' lookback).
    pub fn record_running(&mut self, now: Time, running: u32) {
        self.concurrency
            .raise_peak(ConcurrencyForecast::minute(now), running);
    }

    /// Demand over `(now, now + horizon]`.
    pub fn demand(&self, now: Time, horizon: Duration, cfg: &ForecastConfig) -> Demand {
        Demand {
            probability: self.probability(now, horizon, cfg),
            environments: self.concurrency.environments(now, horizon, cfg),
        }
    }

    /// Probability of at least one arrival within `(now, now + horizon]`; `None` while the
    /// idle-time histogram has too few samples to say ([`Demand::probability`]).
    pub fn probability(&self, now: Time, horizon: Duration, cfg: &ForecastConfig) -> Option<f64> {
        let end = self.last_end?;
        (self.idle.samples() >= cfg.min_samples).then(|| {
            self.idle
                .probability_within(now.saturating_sub(end), horizon)
        })
    }

    /// The first time at or after `now` from which an arrival within `horizon` has
    /// probability at least `threshold`, by the idle-time histogram.
    pub fn likely_from(&self, now: Time, horizon: Duration, threshold: f64) -> Option<Time> {
        let end = self.last_end?;
        let elapsed = now.saturating_sub(end);
        self.idle
            .likely_from(elapsed, horizon, threshold)
            .map(|e| end + e)
    }
}

/// How many times the windows' peaks (newest first) reached `level`: adjacent windows that
/// reach it are one occurrence (a burst that straddles a window boundary is one burst), unless
/// they are three or more (a level held that long is sustained, and each window past the first
/// counts).
fn occurrences(peaks: &[u32], level: u32) -> usize {
    let reached = |i: usize| peaks[i] >= level;
    let runs = (0..peaks.len())
        .filter(|&i| reached(i) && (i == 0 || !reached(i - 1)))
        .count();
    let windows = (0..peaks.len()).filter(|&i| reached(i)).count();
    runs.max(windows.saturating_sub(1))
}

#[cfg(test)]
mod tests;
