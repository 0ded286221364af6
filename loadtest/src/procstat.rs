//! What the processes under test spend: CPU time (user + system, from `/proc/PID/stat`) and
//! resident memory (`VmRSS` in `/proc/PID/status`), Linux only.

use std::time::Duration;

use anyhow::Context;

/// CPU time of `pids` together so far.
pub fn cpu_time(pids: &[u32]) -> anyhow::Result<Duration> {
    let hz = ticks_per_second();
    let mut ticks = 0u64;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path)
            .with_context(|| format!("--watch-pid {pid}: cannot read {path}"))?;
        ticks += parse_stat_ticks(&stat)
            .with_context(|| format!("--watch-pid {pid}: {path} is not in the expected form"))?;
    }
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// utime + stime, fields 14 and 15: counted after the command name, which is in parentheses
/// and may itself hold spaces or parentheses.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of `pids` together, in bytes (0 for a process that is gone).
pub fn resident_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 where it cannot say, as on
/// every common Linux build).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_read_past_a_command_with_spaces() {
        let stat = "42 (nginx: worker (x)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(10));
        assert_eq!(parse_stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_time(&[me]).is_ok());
        assert!(resident_bytes(&[me]) > 0);
        assert!(cpu_time(&[u32::MAX])
            .unwrap_err()
            .to_string()
            .contains("--watch-pid"));
    }
}
