//! The platform's `REPORT` line, read from the log tail of an invocation.
//!
//! With `LogType: Tail`, Lambda answers a synchronous invocation with `X-Amz-Log-Result`: the
//! base64 of the last 4 KB of the invocation's log. Its last platform line is the `REPORT` line
//! (an `XRAY TraceId:` line may follow it when tracing is on):
//!
//! ```text
//! REPORT RequestId: <id>\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 1480.22 ms\t
//! ```
//!
//! `Init Duration` is present only when the invocation met a new (cold) execution environment.
//! A SnapStart restore shows `Restore Duration: X ms\tBilled Restore Duration: Y ms` instead.
//! Other fields (`Status: timeout`, `Error Type: ...`) may appear and are ignored.
//!
//! The tail is cut at a byte offset, so it may begin in the middle of a line (or of a UTF-8
//! character): only whole lines that start with `REPORT RequestId:` count.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;

use crate::platform::Start;

/// The prefix of the platform's report line.
const PREFIX: &str = "REPORT RequestId:";

const NANOS_PER_MS: u64 = 1_000_000;
/// Durations in the REPORT line have a resolution of 0.01 ms.
const NANOS_PER_HUNDREDTH_MS: u64 = 10_000;

/// The figures of one invocation, as the platform reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The invocation's request id.
    pub request_id: String,
    /// Handler duration.
    pub duration: Duration,
    /// Billed duration (whole milliseconds on Lambda).
    pub billed_duration: Duration,
    /// Configured memory.
    pub memory_size_mb: u32,
    /// Peak memory use of the environment.
    pub max_memory_used_mb: u32,
    /// Present only when the invocation met a newly initialized environment (a cold start).
    pub init_duration: Option<Duration>,
    /// Present only on a SnapStart restore.
    pub restore_duration: Option<Duration>,
    /// Present only on a SnapStart restore.
    pub billed_restore_duration: Option<Duration>,
}

impl Report {
    /// How the environment that served this invocation started: cold when the report carries
    /// `Init Duration` or `Restore Duration` (a new environment either way), else warm. A REPORT
    /// line cannot tell a provisioned environment from a warm one.
    pub fn start(&self) -> Start {
        if self.restored() || self.init_duration.is_some() {
            Start::Cold
        } else {
            Start::Warm
        }
    }

    /// Everything billed: the billed duration and a SnapStart restore's billed duration.
    pub fn billed_total(&self) -> Duration {
        self.billed_duration + self.billed_restore_duration.unwrap_or_default()
    }

    /// Whether a new environment was restored from a SnapStart snapshot.
    pub fn restored(&self) -> bool {
        self.restore_duration.is_some() || self.billed_restore_duration.is_some()
    }

    /// The REPORT line in the platform's format, tab-separated with the trailing tab and
    /// without a newline.
    ///
    /// Durations are written in milliseconds with two decimals (rounded to 0.01 ms); the billed
    /// durations as whole milliseconds when they are whole, as Lambda writes them, else with two
    /// decimals. So `parse_log_tail(&r.render()) == Some(r)` for every report whose durations are
    /// multiples of 0.01 ms and whose request id holds no tab or line break.
    pub fn render(&self) -> String {
        let mut line = String::with_capacity(160);
        // Writing into a String cannot fail.
        let _ = write!(
            line,
            "{PREFIX} {}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            self.request_id,
            fmt_ms(self.duration),
            fmt_billed_ms(self.billed_duration),
            self.memory_size_mb,
            self.max_memory_used_mb,
        );
        if let Some(init) = self.init_duration {
            let _ = write!(line, "Init Duration: {} ms\t", fmt_ms(init));
        }
        if let Some(restore) = self.restore_duration {
            let _ = write!(line, "Restore Duration: {} ms\t", fmt_ms(restore));
        }
        if let Some(billed) = self.billed_restore_duration {
            let _ = write!(
                line,
                "Billed Restore Duration: {} ms\t",
                fmt_billed_ms(billed)
            );
        }
        line
    }
}

/// Decodes `X-Amz-Log-Result` (standard base64). Invalid UTF-8, such as a character cut by the
/// 4 KB limit, is replaced lossily. `None` when the value is not base64.
pub fn decode_log_result(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Parses the last REPORT line of a decoded log tail.
///
/// `None` when the tail holds no whole line starting with `REPORT RequestId:`, or when that
/// line lacks one of `Duration`, `Billed Duration`, `Memory Size` and `Max Memory Used`, or
/// when a field it knows has a malformed value (then whether the start was cold is unknown,
/// and guessing "warm" would be wrong).
pub fn parse_log_tail(tail: &str) -> Option<Report> {
    let line = tail
        .split('\n')
        .rev()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .find(|l| l.starts_with(PREFIX))?;
    parse_line(line)
}

fn parse_line(line: &str) -> Option<Report> {
    let rest = line.strip_prefix(PREFIX)?;
    let mut fields = rest.split('\t');
    let request_id = fields.next()?.trim();
    if request_id.is_empty() {
        return None;
    }

    let mut duration = None;
    let mut billed_duration = None;
    let mut memory_size_mb = None;
    let mut max_memory_used_mb = None;
    let mut init_duration = None;
    let mut restore_duration = None;
    let mut billed_restore_duration = None;

    for field in fields {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let Some((key, value)) = field.split_once(':') else {
            continue;
        };
        let value = value.trim();
        // The first occurrence of a field wins; unknown fields are ignored.
        match key.trim() {
            "Duration" if duration.is_none() => duration = Some(parse_ms(value)?),
            "Billed Duration" if billed_duration.is_none() => {
                billed_duration = Some(parse_ms(value)?)
            }
            "Memory Size" if memory_size_mb.is_none() => memory_size_mb = Some(parse_mb(value)?),
            "Max Memory Used" if max_memory_used_mb.is_none() => {
                max_memory_used_mb = Some(parse_mb(value)?)
            }
            "Init Duration" if init_duration.is_none() => init_duration = Some(parse_ms(value)?),
            "Restore Duration" if restore_duration.is_none() => {
                restore_duration = Some(parse_ms(value)?)
            }
            "Billed Restore Duration" if billed_restore_duration.is_none() => {
                billed_restore_duration = Some(parse_ms(value)?)
            }
            _ => {}
        }
    }

    Some(Report {
        request_id: request_id.to_owned(),
        duration: duration?,
        billed_duration: billed_duration?,
        memory_size_mb: memory_size_mb?,
        max_memory_used_mb: max_memory_used_mb?,
        init_duration,
        restore_duration,
        billed_restore_duration,
    })
}

/// `"12.34 ms"` (the unit is optional) into an exact duration, without going through floats.
fn parse_ms(value: &str) -> Option<Duration> {
    let number = value.strip_suffix("ms").unwrap_or(value).trim_end();
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = int_part.parse().ok()?;
    // Nanosecond resolution is enough: further digits are dropped.
    let mut frac_nanos: u64 = 0;
    let mut scale = NANOS_PER_MS;
    for digit in frac_part.bytes().take(6) {
        scale /= 10;
        frac_nanos += u64::from(digit - b'0') * scale;
    }
    let nanos = ms.checked_mul(NANOS_PER_MS)?.checked_add(frac_nanos)?;
    Some(Duration::from_nanos(nanos))
}

/// `"1024 MB"` (the unit is optional) into megabytes.
fn parse_mb(value: &str) -> Option<u32> {
    let number = value.strip_suffix("MB").unwrap_or(value).trim_end();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// Milliseconds with two decimals, rounded half up to 0.01 ms.
fn fmt_ms(d: Duration) -> String {
    let hundredths = (d.as_nanos() + u128::from(NANOS_PER_HUNDREDTH_MS / 2))
        / u128::from(NANOS_PER_HUNDREDTH_MS);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Whole milliseconds when the duration is whole (Lambda bills by the millisecond), else as
/// [`fmt_ms`].
fn fmt_billed_ms(d: Duration) -> String {
    if d.as_nanos().is_multiple_of(u128::from(NANOS_PER_MS)) {
        (d.as_nanos() / u128::from(NANOS_PER_MS)).to_string()
    } else {
        fmt_ms(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COLD: &str = "START RequestId: 8f5e3c1a-0b7d-4a36-9f0e-2c1d7b6a5e40 Version: 3\n\
        loading model\n\
        END RequestId: 8f5e3c1a-0b7d-4a36-9f0e-2c1d7b6a5e40\n\
        REPORT RequestId: 8f5e3c1a-0b7d-4a36-9f0e-2c1d7b6a5e40\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 1480.22 ms\t\n";

    fn ms(hundredths: u64) -> Duration {
        Duration::from_nanos(hundredths * NANOS_PER_HUNDREDTH_MS)
    }

    #[test]
    fn parses_a_cold_report() {
        let r = parse_log_tail(COLD).expect("report");
        assert_eq!(r.request_id, "8f5e3c1a-0b7d-4a36-9f0e-2c1d7b6a5e40");
        assert_eq!(r.duration, ms(1234));
        assert_eq!(r.billed_duration, Duration::from_millis(13));
        assert_eq!(r.memory_size_mb, 1024);
        assert_eq!(r.max_memory_used_mb, 180);
        assert_eq!(r.init_duration, Some(ms(148_022)));
        assert_eq!(r.restore_duration, None);
        assert_eq!(r.start(), Start::Cold);
    }

    #[test]
    fn parses_a_warm_report_without_trailing_tab_or_newline() {
        let tail = "REPORT RequestId: abc\tDuration: 1.79 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 46 MB";
        let r = parse_log_tail(tail).expect("report");
        assert_eq!(r.duration, ms(179));
        assert_eq!(r.init_duration, None);
        assert_eq!(r.start(), Start::Warm);
    }

    #[test]
    fn parses_a_snapstart_restore() {
        let tail = "REPORT RequestId: r1\tDuration: 80.00 ms\tBilled Duration: 81 ms\tMemory Size: 512 MB\tMax Memory Used: 99 MB\tRestore Duration: 474.16 ms\tBilled Restore Duration: 300 ms\t\n";
        let r = parse_log_tail(tail).expect("report");
        assert_eq!(r.restore_duration, Some(ms(47_416)));
        assert_eq!(r.billed_restore_duration, Some(Duration::from_millis(300)));
        assert_eq!(r.start(), Start::Cold);
        assert!(r.restored());
    }

    #[test]
    fn tolerates_xray_lines_unknown_fields_crlf_and_old_spacing() {
        let tail = "ine cut in the middle\n\
            REPORT RequestId: old\tDuration: 5.00 ms\tBilled Duration: 5 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\t\n\
            REPORT RequestId: new\tDuration: 3000.00 ms\tBilled Duration: 3000 ms \tMemory Size: 128 MB\tMax Memory Used: 50 MB\tInit Duration: 200.50 ms\tStatus: timeout\tError Type: Runtime.ExitError\t\r\n\
            XRAY TraceId: 1-5e1b4151-5ac6c58f5b5dbd6a5e1f3f4f\tSegmentId: 6b3c2b6f1e2d4a1b\tSampled: true\t\n";
        let r = parse_log_tail(tail).expect("report");
        assert_eq!(r.request_id, "new");
        assert_eq!(r.billed_duration, Duration::from_millis(3000));
        assert_eq!(r.init_duration, Some(ms(20_050)));
        assert_eq!(r.start(), Start::Cold);
    }

    #[test]
    fn no_report_or_malformed_report_is_none() {
        assert_eq!(parse_log_tail(""), None);
        assert_eq!(parse_log_tail("START RequestId: x\nhello\n"), None);
        // Cut inside the REPORT line: no whole line starts with the prefix.
        assert_eq!(
            parse_log_tail("PORT RequestId: x\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\t"),
            None
        );
        // Missing a required field.
        assert_eq!(
            parse_log_tail("REPORT RequestId: x\tDuration: 1.00 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\t"),
            None
        );
        // A malformed Init Duration makes the start unknown, not warm.
        assert_eq!(
            parse_log_tail("REPORT RequestId: x\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\tInit Duration: soon ms\t"),
            None
        );
        // Overflow is rejected, not wrapped.
        assert_eq!(
            parse_log_tail("REPORT RequestId: x\tDuration: 99999999999999999999.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\t"),
            None
        );
    }

    #[test]
    fn render_matches_the_platform_format() {
        let r = parse_log_tail(COLD).unwrap();
        assert_eq!(
            r.render(),
            "REPORT RequestId: 8f5e3c1a-0b7d-4a36-9f0e-2c1d7b6a5e40\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 1480.22 ms\t"
        );
        let rounded = Report {
            duration: Duration::from_nanos(12_345_000),
            billed_duration: Duration::from_micros(12_500),
            ..r
        };
        let line = rounded.render();
        assert!(line.contains("\tDuration: 12.35 ms\t"), "{line}");
        assert!(line.contains("\tBilled Duration: 12.50 ms\t"), "{line}");
    }

    #[test]
    fn decodes_log_result() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(COLD);
        assert_eq!(decode_log_result(&b64).as_deref(), Some(COLD));
        assert_eq!(decode_log_result("not base64!"), None);
        // A character cut by the 4 KB limit is replaced, not fatal.
        let cut = base64::engine::general_purpose::STANDARD.encode([0xa9, b'o', b'k']);
        assert_eq!(decode_log_result(&cut).as_deref(), Some("\u{fffd}ok"));
    }

    fn hundredths_ms() -> impl Strategy<Value = Duration> {
        (0u64..=90_000_000).prop_map(ms)
    }

    fn whole_ms() -> impl Strategy<Value = Duration> {
        (0u64..=900_000).prop_map(Duration::from_millis)
    }

    prop_compose! {
        fn report()(
            request_id in "[0-9a-zA-Z-]{1,40}",
            duration in hundredths_ms(),
            billed_duration in prop_oneof![whole_ms(), hundredths_ms()],
            memory_size_mb in any::<u32>(),
            max_memory_used_mb in any::<u32>(),
            start in 0u8..3,
            init in hundredths_ms(),
            restore in hundredths_ms(),
            billed_restore in whole_ms(),
        ) -> Report {
            let (init_duration, restore_duration, billed_restore_duration) = match start {
                0 => (None, None, None),
                1 => (Some(init), None, None),
                _ => (None, Some(restore), Some(billed_restore)),
            };
            Report {
                request_id,
                duration,
                billed_duration,
                memory_size_mb,
                max_memory_used_mb,
                init_duration,
                restore_duration,
                billed_restore_duration,
            }
        }
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(r in report()) {
            prop_assert_eq!(parse_log_tail(&r.render()), Some(r));
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse_log_tail(&s);
            let _ = decode_log_result(&s);
        }

        #[test]
        fn parse_never_panics_on_report_like_input(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("REPORT RequestId: ".to_owned()),
                    Just("\t".to_owned()),
                    Just("\n".to_owned()),
                    Just("Duration: ".to_owned()),
                    Just("Billed Duration: ".to_owned()),
                    Just("Memory Size: ".to_owned()),
                    Just("Max Memory Used: ".to_owned()),
                    Just("Init Duration: ".to_owned()),
                    Just(" ms".to_owned()),
                    Just(" MB".to_owned()),
                    "[0-9.]{0,25}",
                    any::<String>(),
                ],
                0..40,
            )
        ) {
            let _ = parse_log_tail(&parts.concat());
        }

        #[test]
        fn a_tail_cut_before_the_report_line_still_yields_it(
            r in report(),
            prefix in "[ -~\n\t\u{e9}\u{1F600}]{0,300}",
            cut in any::<prop::sample::Index>(),
            xray in any::<bool>(),
        ) {
            let mut log = prefix;
            log.push('\n');
            let report_at = log.len();
            log.push_str(&r.render());
            log.push('\n');
            if xray {
                log.push_str("XRAY TraceId: 1-abc\tSegmentId: def\tSampled: true\t\n");
            }
            // Cut the raw bytes, as the 4 KB limit does, then decode lossily.
            let offset = cut.index(report_at + 1);
            let tail = String::from_utf8_lossy(&log.as_bytes()[offset..]);
            prop_assert_eq!(parse_log_tail(&tail), Some(r));
        }

        #[test]
        fn without_init_or_restore_duration_it_is_warm(r in report()) {
            let warm = Report {
                init_duration: None,
                restore_duration: None,
                billed_restore_duration: None,
                ..r
            };
            let parsed = parse_log_tail(&warm.render()).unwrap();
            prop_assert_eq!(parsed.start(), Start::Warm);
            prop_assert!(!parsed.render().contains("Init Duration"));
        }
    }
}
