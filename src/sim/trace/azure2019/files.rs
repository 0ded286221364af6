//! Which files of a directory make up an Azure Functions 2019 trace: the Azure public dataset's
//! day files, invitro's `invocations.csv` set, or invitro's `NNN_inv.csv` set.

use std::path::{Path, PathBuf};

use super::super::{file_names, TraceError};
use super::{EXPECT_2019_DIR, EXPECT_DURATIONS, EXPECT_MEMORY};

pub(super) const OFFICIAL_INVOCATIONS: (&str, &str) =
    ("invocations_per_function_md.anon.d", ".csv");
const OFFICIAL_DURATIONS: &str = "function_durations_percentiles.anon.d";
const OFFICIAL_MEMORY: &str = "app_memory_percentiles.anon.d";

/// The day digits of an official Azure 2019 file name `<prefix><digits>.csv`.
pub(super) fn official_day<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let digits = name
        .strip_prefix(prefix)?
        .strip_suffix(OFFICIAL_INVOCATIONS.1)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The files of an Azure 2019 trace.
pub(super) struct Files2019 {
    /// Invocation files with their day number (0 for invitro's single files), by day.
    pub(super) invocations: Vec<(i64, PathBuf)>,
    pub(super) durations: Vec<PathBuf>,
    pub(super) memory: Vec<PathBuf>,
}

pub(super) fn files_2019(dir: &Path) -> Result<Files2019, TraceError> {
    let names = file_names(dir)?;
    let mut days: Vec<(i64, &str)> = names
        .iter()
        .filter_map(|n| {
            let digits = official_day(n, OFFICIAL_INVOCATIONS.0)?;
            Some((digits.parse::<i64>().ok()?, digits))
        })
        .collect();
    days.sort();
    let invitro = names.iter().any(|n| n == "invocations.csv");
    let sized: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix("_inv.csv"))
        .collect();
    let kinds = usize::from(!days.is_empty()) + usize::from(invitro) + sized.len();
    if kinds > 1 {
        let mut held = Vec::new();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            held.push(format!(
                "{}{}{} to d{}",
                OFFICIAL_INVOCATIONS.0, first.1, OFFICIAL_INVOCATIONS.1, last.1
            ));
        }
        if invitro {
            held.push("invocations.csv".to_string());
        }
        held.extend(sized.iter().map(|p| format!("{p}_inv.csv")));
        return Err(TraceError::Ambiguous {
            dir: dir.to_path_buf(),
            found: format!("several Azure 2019 traces ({})", held.join(", ")),
        });
    }
    if !days.is_empty() {
        let present = |name: String| names.contains(&name).then(|| dir.join(name));
        let durations: Vec<PathBuf> = days
            .iter()
            .filter_map(|(_, d)| present(format!("{OFFICIAL_DURATIONS}{d}.csv")))
            .collect();
        let memory: Vec<PathBuf> = days
            .iter()
            .filter_map(|(_, d)| present(format!("{OFFICIAL_MEMORY}{d}.csv")))
            .collect();
        let first = days[0].1;
        if durations.is_empty() {
            return Err(TraceError::MissingFile {
                file: dir.join(format!("{OFFICIAL_DURATIONS}{first}.csv")),
                expected: EXPECT_DURATIONS.to_string(),
            });
        }
        if memory.is_empty() {
            return Err(TraceError::MissingFile {
                file: dir.join(format!("{OFFICIAL_MEMORY}{first}.csv")),
                expected: EXPECT_MEMORY.to_string(),
            });
        }
        let invocations = days
            .iter()
            .map(|&(day, d)| {
                (
                    day,
                    dir.join(format!(
                        "{}{d}{}",
                        OFFICIAL_INVOCATIONS.0, OFFICIAL_INVOCATIONS.1
                    )),
                )
            })
            .collect();
        return Ok(Files2019 {
            invocations,
            durations,
            memory,
        });
    }
    let (inv, dur, mem) = if invitro {
        (
            "invocations.csv".to_string(),
            "durations.csv".to_string(),
            "memory.csv".to_string(),
        )
    } else if let [prefix] = sized.as_slice() {
        (
            format!("{prefix}_inv.csv"),
            format!("{prefix}_run.csv"),
            format!("{prefix}_mem.csv"),
        )
    } else {
        return Err(TraceError::MissingFile {
            file: dir.join("invocations.csv"),
            expected: EXPECT_2019_DIR.to_string(),
        });
    };
    for (name, expected) in [(&dur, EXPECT_DURATIONS), (&mem, EXPECT_MEMORY)] {
        if !names.contains(name) {
            return Err(TraceError::MissingFile {
                file: dir.join(name),
                expected: expected.to_string(),
            });
        }
    }
    Ok(Files2019 {
        invocations: vec![(0, dir.join(inv))],
        durations: vec![dir.join(dur)],
        memory: vec![dir.join(mem)],
    })
}
