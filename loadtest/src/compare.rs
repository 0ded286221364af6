//! Several runs of the same workload side by side, as one markdown table: the first run is
//! the reference (the emulator directly) that added latency is measured against.

use std::path::Path;

use anyhow::Context;

use crate::report::{Summary, SUMMARY};

pub fn read(dir: &Path) -> anyhow::Result<Summary> {
    let path = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))
}

/// The table of `runs`, the first as the reference.
pub fn table(runs: &[Summary]) -> String {
    let mut md = String::from(
        "| way | requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | cold starts | cold share \
         | added p50 ms | added p99 ms | errors | CPU µs/request | resident MB |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let Some(reference) = runs.first() else {
        return md;
    };
    let base = &reference.figures.latency_ms;
    for s in runs {
        let f = &s.figures;
        let l = &f.latency_ms;
        let (cpu, rss) = match &s.spent {
            Some(spent) => (
                format!("{:.1}", spent.cpu_us_per_request),
                format!("{:.1}", spent.peak_resident_mb),
            ),
            None => ("".into(), "".into()),
        };
        md += &format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2}% | {:+.2} | {:+.2} | {} | {cpu} | {rss} |\n",
            s.label,
            f.measured,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            f.cold_starts,
            f.cold_share * 100.0,
            l.p50 - base.p50,
            l.p99 - base.p99,
            f.errors.values().sum::<u64>(),
        );
    }
    md
}
