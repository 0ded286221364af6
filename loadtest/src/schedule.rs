//! What is sent when: a trace (or a rate profile) cut to the chosen functions and window, its
//! arrivals merged into one schedule in wall time at the chosen time scale.
//!
//! The Azure 2019 reader already spreads each minute's count within the minute (uniform,
//! seeded, as the simulator replays it), so every format arrives here as per-request times.

use std::time::Duration;

use warmgate::sim::trace::{Arrival, DurationModel, Trace, TraceFormat, TraceFunction};

/// Which functions of a trace to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pick {
    /// The first N in the trace's own order.
    First,
    /// The N with the most arrivals in the window.
    Busiest,
}

/// The part of a trace to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// At most this many functions (those with at least one arrival in the window).
    pub functions: Option<usize>,
    pub pick: Pick,
    /// Start of the window, in trace time; it becomes time zero.
    pub from: Duration,
    /// Length of the window; to the trace's end if unset.
    pub length: Option<Duration>,
}

/// `trace` cut to the window of `sel` (arrivals shifted so that the window starts at zero),
/// keeping the functions `sel` picks among those with arrivals in the window, in trace order.
pub fn select(trace: &Trace, sel: &Selection) -> Result<Trace, String> {
    if sel.from >= trace.duration {
        return Err(format!(
            "the window starts at {:.1} min, past the end of trace {} ({:.1} min)",
            sel.from.as_secs_f64() / 60.0,
            trace.name,
            trace.duration.as_secs_f64() / 60.0
        ));
    }
    let end = match sel.length {
        Some(len) if len.is_zero() => return Err("the window's length must be positive".into()),
        Some(len) => (sel.from + len).min(trace.duration),
        None => trace.duration,
    };
    let mut kept: Vec<(usize, TraceFunction)> = trace
        .functions
        .iter()
        .map(|f| {
            let arrivals = f
                .arrivals
                .iter()
                .filter(|a| a.at >= sel.from && a.at < end)
                .map(|a| Arrival {
                    at: a.at - sel.from,
                    ..*a
                })
                .collect();
            TraceFunction {
                arrivals,
                ..f.clone()
            }
        })
        .enumerate()
        .filter(|(_, f)| !f.arrivals.is_empty())
        .collect();
    if kept.is_empty() {
        return Err(format!(
            "no function of trace {} has an arrival between {:.1} and {:.1} min",
            trace.name,
            sel.from.as_secs_f64() / 60.0,
            end.as_secs_f64() / 60.0
        ));
    }
    if let Some(n) = sel.functions {
        if n == 0 {
            return Err("--functions must be at least 1".into());
        }
        if sel.pick == Pick::Busiest {
            // Stable: ties keep trace order.
            kept.sort_by_key(|(_, f)| std::cmp::Reverse(f.arrivals.len()));
        }
        kept.truncate(n);
        kept.sort_by_key(|(i, _)| *i);
    }
    Ok(Trace {
        name: trace.name.clone(),
        format: trace.format,
        functions: kept.into_iter().map(|(_, f)| f).collect(),
        duration: end - sel.from,
    })
}

/// One request of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    /// When to send it, from the run's start, in wall time.
    pub at: Duration,
    /// Its arrival in trace time (from the window's start).
    pub trace_at: Duration,
    /// Index of its function in the selected trace: the emulator's and gateway's `f{index}`.
    pub function: u32,
}

/// Every request of a run, in send order.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub sends: Vec<Send>,
    /// How much faster than the trace it runs: an hour of trace in 60/scale minutes.
    pub scale: f64,
    /// The window's length in trace time.
    pub trace_span: Duration,
}

impl Schedule {
    /// The arrivals of every function of `trace`, merged, at `scale`.
    pub fn new(trace: &Trace, scale: f64) -> Result<Schedule, String> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(format!(
                "--time-scale must be a positive number, got {scale}"
            ));
        }
        let mut sends: Vec<Send> = trace
            .functions
            .iter()
            .enumerate()
            .flat_map(|(f, tf)| {
                tf.arrivals.iter().map(move |a| Send {
                    at: a.at.div_f64(scale),
                    trace_at: a.at,
                    function: f as u32,
                })
            })
            .collect();
        sends.sort_by_key(|s| (s.trace_at, s.function));
        Ok(Schedule {
            sends,
            scale,
            trace_span: trace.duration,
        })
    }

    /// The run's length in wall time.
    pub fn wall_span(&self) -> Duration {
        self.trace_span.div_f64(self.scale)
    }
}

/// A rate profile in place of a trace: steps of `rate` requests per second of trace time, each
/// for `seconds`, written `RATE:SECONDS[,RATE:SECONDS...]` (`200:60,800:30`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    pub steps: Vec<(f64, f64)>,
}

impl std::str::FromStr for RateProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let steps = s
            .split(',')
            .map(|step| {
                let (rate, secs) = step.trim().split_once(':').ok_or_else(|| {
                    format!("rate step {step:?}: expected RATE:SECONDS, as in 200:60")
                })?;
                let num = |v: &str, what: &str| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| {
                            format!("rate step {step:?}: {what} {v:?} is not a positive number")
                        })
                };
                Ok((num(rate, "rate")?, num(secs, "seconds")?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RateProfile { steps })
    }
}

impl RateProfile {
    /// The profile as a trace of `functions` functions of `memory_mb` with a handler of
    /// `duration`: arrivals evenly spaced within each step, functions in turn.
    ///
    /// The trace's format names the reader whose shape it has (per-request times with a
    /// duration each); only its functions are used downstream.
    pub fn trace(&self, functions: usize, memory_mb: u32, duration: Duration) -> Trace {
        let functions = functions.max(1);
        let mut arrivals: Vec<Vec<Arrival>> = vec![Vec::new(); functions];
        let mut start = 0.0;
        let mut i = 0usize;
        for &(rate, secs) in &self.steps {
            let n = (rate * secs).round() as usize;
            for j in 0..n {
                let at = start + (j as f64 + 0.5) / rate;
                arrivals[i % functions].push(Arrival {
                    at: Duration::from_secs_f64(at),
                    duration: Some(duration),
                    tokens: None,
                });
                i += 1;
            }
            start += secs;
        }
        Trace {
            name: format!("rate {}", self.label()),
            format: TraceFormat::Azure2021,
            functions: arrivals
                .into_iter()
                .enumerate()
                .map(|(k, arrivals)| TraceFunction {
                    lambda: Default::default(),
                    id: format!("rate-{k}"),
                    app: format!("rate-{k}"),
                    trigger: Some("http".into()),
                    memory_mb,
                    durations: DurationModel::Fixed(duration),
                    arrivals,
                })
                .collect(),
            duration: Duration::from_secs_f64(start),
        }
    }

    pub fn label(&self) -> String {
        self.steps
            .iter()
            .map(|(r, s)| format!("{r}/s for {s} s"))
            .collect::<Vec<_>>()
            .join(", then ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warmgate::sim::trace::{read_azure_2019, AzureOptions, SpreadRule};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn function(id: &str, at_ms: &[u64]) -> TraceFunction {
        TraceFunction {
            lambda: Default::default(),
            id: id.into(),
            app: id.into(),
            trigger: None,
            memory_mb: 128,
            durations: DurationModel::Fixed(ms(10)),
            arrivals: at_ms
                .iter()
                .map(|&t| Arrival {
                    at: ms(t),
                    duration: None,
                    tokens: None,
                })
                .collect(),
        }
    }

    fn trace(functions: Vec<TraceFunction>, span_ms: u64) -> Trace {
        Trace {
            name: "t".into(),
            format: TraceFormat::Azure2021,
            functions,
            duration: ms(span_ms),
        }
    }

    fn all() -> Selection {
        Selection {
            functions: None,
            pick: Pick::First,
            from: Duration::ZERO,
            length: None,
        }
    }

    /// Per-minute counts become that many arrivals inside their own minute, the same for the
    /// same seed, each minute's requests at their minute's share of the wall schedule.
    #[test]
    fn per_minute_counts_are_spread_within_their_minute() {
        let dir = std::env::temp_dir().join(format!("warmgate-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let minutes: String = (1..=3).map(|m| format!(",{m}")).collect();
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write(
            "invocations.csv",
            format!("HashOwner,HashApp,HashFunction,Trigger{minutes}\no,a,f,http,3,0,5\n"),
        );
        write(
            "durations.csv",
            "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,\
             percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,\
             percentile_Average_99,percentile_Average_100\no,a,f,45,8,10,200,10,10,20,40,60,100,200\n"
                .into(),
        );
        write(
            "memory.csv",
            "HashFunction,HashOwner,HashApp,SampleCount,AverageAllocatedMb\nf,o,a,10,300\n".into(),
        );
        let opts = AzureOptions {
            spread: SpreadRule::Uniform,
            seed: 7,
            ..AzureOptions::default()
        };
        let read = read_azure_2019(&dir, &opts).unwrap();
        assert_eq!(
            read_azure_2019(&dir, &opts).unwrap().functions[0].arrivals,
            read.functions[0].arrivals
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let schedule = Schedule::new(&read, 60.0).unwrap();
        let per_minute = |m: u64| {
            schedule
                .sends
                .iter()
                .filter(|s| {
                    s.trace_at >= Duration::from_secs(60 * m)
                        && s.trace_at < Duration::from_secs(60 * (m + 1))
                })
                .count()
        };
        assert_eq!((per_minute(0), per_minute(1), per_minute(2)), (3, 0, 5));
        // At 60x a trace minute is a wall second.
        for s in &schedule.sends {
            assert_eq!(s.at.as_secs(), s.trace_at.as_secs() / 60);
        }
        assert_eq!(schedule.wall_span(), Duration::from_secs(3));
    }

    #[test]
    fn time_scale_divides_every_time_and_keeps_the_order() {
        let t = trace(
            vec![function("a", &[0, 600, 1200]), function("b", &[300, 600])],
            1500,
        );
        let s = Schedule::new(&t, 3.0).unwrap();
        let got: Vec<(u64, u32)> = s
            .sends
            .iter()
            .map(|s| (s.at.as_millis() as u64, s.function))
            .collect();
        assert_eq!(got, vec![(0, 0), (100, 1), (200, 0), (200, 1), (400, 0)]);
        assert_eq!(s.wall_span(), ms(500));
        assert!(Schedule::new(&t, 0.0).unwrap_err().contains("--time-scale"));
        assert!(Schedule::new(&t, f64::NAN).is_err());
    }

    #[test]
    fn the_window_shifts_arrivals_and_drops_functions_without_any() {
        let t = trace(
            vec![
                function("a", &[100, 2500]),
                function("b", &[1200, 1900, 2100]),
                function("c", &[50]),
            ],
            3000,
        );
        let sel = Selection {
            from: ms(1000),
            length: Some(ms(1500)),
            ..all()
        };
        let cut = select(&t, &sel).unwrap();
        assert_eq!(cut.duration, ms(1500));
        let ids: Vec<&str> = cut.functions.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        let at: Vec<Duration> = cut.functions[0].arrivals.iter().map(|a| a.at).collect();
        assert_eq!(at, [ms(200), ms(900), ms(1100)]);
    }

    #[test]
    fn first_and_busiest_pick_different_functions_in_trace_order() {
        let t = trace(
            vec![
                function("a", &[1]),
                function("b", &[1, 2, 3]),
                function("c", &[1, 2]),
                function("d", &[1, 2, 3]),
            ],
            10,
        );
        let ids = |pick, n| {
            let sel = Selection {
                functions: Some(n),
                pick,
                ..all()
            };
            select(&t, &sel)
                .unwrap()
                .functions
                .iter()
                .map(|f| f.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Pick::First, 2), ["a", "b"]);
        assert_eq!(ids(Pick::Busiest, 2), ["b", "d"]);
        assert_eq!(ids(Pick::Busiest, 3), ["b", "c", "d"]);
    }

    #[test]
    fn bad_selections_say_what_is_wrong() {
        let t = trace(vec![function("a", &[100])], 1000);
        let past = Selection {
            from: ms(1000),
            ..all()
        };
        assert!(select(&t, &past).unwrap_err().contains("past the end"));
        let empty = Selection {
            from: ms(200),
            ..all()
        };
        assert!(select(&t, &empty).unwrap_err().contains("no function"));
        let zero = Selection {
            functions: Some(0),
            ..all()
        };
        assert!(select(&t, &zero).unwrap_err().contains("--functions"));
    }

    #[test]
    fn a_rate_profile_spaces_its_steps_and_takes_functions_in_turn() {
        let p: RateProfile = "10:1, 20:0.5".parse().unwrap();
        let t = p.trace(2, 512, ms(5));
        assert_eq!(t.duration, ms(1500));
        assert_eq!(t.invocations(), 20);
        assert_eq!(t.functions[0].arrivals.len(), 10);
        assert_eq!(t.functions[0].arrivals[0].at, ms(50));
        assert_eq!(t.functions[1].arrivals[0].at, ms(150));
        // The second step starts at 1 s, at 20 per second.
        let s = Schedule::new(&t, 1.0).unwrap();
        assert_eq!(s.sends[10].at, ms(1025));
        assert!("10"
            .parse::<RateProfile>()
            .unwrap_err()
            .contains("RATE:SECONDS"));
        assert!("x:1"
            .parse::<RateProfile>()
            .unwrap_err()
            .contains("rate \"x\""));
        assert!("10:-1"
            .parse::<RateProfile>()
            .unwrap_err()
            .contains("seconds"));
    }
}
