use std::fs;
use std::time::Instant;

use super::*;
use crate::sim::trace::testing::{shared, temp_dir, write, Scratch, MIN};
use crate::sim::trace::{
    detect, load, read_azure_llm_2023, LlmOptions, LoadOptions, MAX_MEMORY_MB,
};

const DURATIONS_HEADER: &str = "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,\
    percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,\
    percentile_Average_75,percentile_Average_99,percentile_Average_100";
const MEMORY_PCT: &str = "AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,\
    AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,\
    AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100";

/// Per-minute counts of the invitro fixture, minutes 480..=485.
const COUNTS: [(&str, [u64; 6]); 4] = [
    ("f1", [0, 1, 0, 2, 0, 5]),
    ("f2", [3, 0, 0, 0, 1, 0]),
    ("f3", [0, 0, 0, 0, 0, 0]),
    ("f4", [1, 1, 1, 1, 1, 1]),
];

/// invitro's 500-function layout, made up: four functions over six minutes 480..=485.
fn invitro_fixture() -> Scratch {
    let dir = temp_dir("invitro");
    let mut inv = String::from("HashOwner,HashApp,HashFunction,Trigger,480,481,482,483,484,485\n");
    for (i, (f, counts)) in COUNTS.iter().enumerate() {
        let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
        inv += &format!("o{i},a{i},{f},http,{}\n", counts.join(","));
    }
    write(&dir, "invocations.csv", &inv);
    write(
        &dir,
        "durations.csv",
        &format!(
            "{DURATIONS_HEADER}\n\
             o0,a0,f1,45,100,10.0,200.0,10,10,20,40,60,100,200\n\
             o1,a1,f2,5,4,1.0,9.0,1,1,2,5,7,9,9\n\
             o2,a2,f3,1,1,1.0,1.0,1,1,1,1,1,1,1\n"
        ),
    );
    write(
        &dir,
        "memory.csv",
        &format!(
            "HashFunction,HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
             f1,o0,a0,10,57.5,1,1,1,1,1,1,1,1\n\
             f2,o1,a1,10,300.2,1,1,1,1,1,1,1,1\n\
             f3,o2,a2,10,20000,1,1,1,1,1,1,1,1\n"
        ),
    );
    dir
}

fn per_minute(f: &TraceFunction, minutes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; minutes];
    for a in &f.arrivals {
        counts[(a.at.as_nanos() / MIN.as_nanos()) as usize] += 1;
    }
    counts
}

fn even() -> AzureOptions {
    AzureOptions {
        spread: SpreadRule::Even,
        ..AzureOptions::default()
    }
}

#[test]
fn counts_per_minute_are_kept_under_both_rules() {
    let dir = invitro_fixture();
    for spread in [SpreadRule::Even, SpreadRule::Uniform] {
        let opts = AzureOptions {
            spread,
            seed: 11,
            ..AzureOptions::default()
        };
        let trace = read_azure_2019(&dir, &opts).unwrap();
        assert_eq!(trace.format, TraceFormat::Azure2019);
        assert_eq!(trace.duration, 6 * MIN, "time zero is minute 480");
        assert_eq!(trace.functions.len(), 4);
        for (f, (id, counts)) in trace.functions.iter().zip(COUNTS) {
            assert_eq!(f.id, id);
            assert_eq!(per_minute(f, 6), counts, "{id} under {spread:?}");
            assert!(f.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(f
                .arrivals
                .iter()
                .all(|a| a.duration.is_none() && a.tokens.is_none()));
        }
        assert_eq!(trace.invocations(), 8 + 4 + 6);
    }
}

#[test]
fn even_spread_puts_two_calls_at_a_quarter_and_three_quarters() {
    let trace = read_azure_2019(&invitro_fixture(), &even()).unwrap();
    let f1 = trace.function("f1").unwrap();
    let at: Vec<Duration> = f1.arrivals.iter().map(|a| a.at).collect();
    assert_eq!(at[0], MIN + Duration::from_secs(30));
    assert_eq!(at[1], 3 * MIN + Duration::from_secs(15));
    assert_eq!(at[2], 3 * MIN + Duration::from_secs(45));
    assert_eq!(
        at[3],
        5 * MIN + Duration::from_secs(6),
        "5 calls: 0.1 of the minute"
    );
    assert_eq!(at[7], 5 * MIN + Duration::from_secs(54));
}

#[test]
fn uniform_spread_stays_in_its_minute_and_repeats_for_a_seed() {
    let dir = invitro_fixture();
    let read = |seed: u64, max_functions: Option<usize>| {
        let opts = AzureOptions {
            spread: SpreadRule::Uniform,
            seed,
            max_functions,
            ..AzureOptions::default()
        };
        read_azure_2019(&dir, &opts).unwrap()
    };
    let a = read(5, None);
    let b = read(5, None);
    let c = read(6, None);
    for (f, (_, counts)) in a.functions.iter().zip(COUNTS) {
        // per_minute buckets by minute, so equal counts mean every call is in its minute.
        assert_eq!(per_minute(f, 6), counts);
    }
    let times = |t: &Trace| -> Vec<Vec<Duration>> {
        t.functions
            .iter()
            .map(|f| f.arrivals.iter().map(|a| a.at).collect())
            .collect()
    };
    assert_eq!(times(&a), times(&b));
    assert_ne!(times(&a), times(&c));
    // A function's draws do not depend on which other functions are read.
    let two = read(5, Some(2));
    assert_eq!(times(&two)[..], times(&a)[..2]);
}

#[test]
fn durations_and_memory_join_with_defaults_and_clamping() {
    let opts = AzureOptions {
        default_duration: Duration::from_millis(700),
        ..even()
    };
    let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
    let f = |id: &str| trace.function(id).unwrap();
    assert_eq!(f("f1").memory_mb, 128, "57.5 MB means 128 MB");
    assert_eq!(f("f2").memory_mb, 301, "rounded up to a whole MB");
    assert_eq!(f("f3").memory_mb, 10_240, "clamped to Lambda's largest");
    assert_eq!(f("f4").memory_mb, 128, "no memory row");
    assert_eq!(
        f("f1").durations,
        DurationModel::Percentiles {
            average_ms: 45.0,
            p0: 10.0,
            p1: 10.0,
            p25: 20.0,
            p50: 40.0,
            p75: 60.0,
            p99: 100.0,
            p100: 200.0
        }
    );
    assert_eq!(f("f1").durations.average(), Duration::from_millis(45));
    assert_eq!(f("f1").app, "a0");
    assert_eq!(f("f1").trigger.as_deref(), Some("http"));
    assert_eq!(
        f("f4").durations,
        DurationModel::Fixed(Duration::from_millis(700)),
        "no duration row"
    );
    assert_eq!(lambda_memory_mb(0.0), 128);
    assert_eq!(lambda_memory_mb(128.4), 129);
    assert_eq!(lambda_memory_mb(f64::NAN), 128);
    assert_eq!(lambda_memory_mb(1e9), 10_240);
}

#[test]
fn limits_to_the_first_functions_and_a_minute_range() {
    let opts = AzureOptions {
        max_functions: Some(2),
        minutes: Some(2..4),
        ..even()
    };
    let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
    assert_eq!(trace.functions.len(), 2);
    assert_eq!(trace.duration, 2 * MIN);
    let f1: Vec<Duration> = trace.functions[0].arrivals.iter().map(|a| a.at).collect();
    assert_eq!(
        f1,
        [MIN + Duration::from_secs(15), MIN + Duration::from_secs(45)],
        "minute 3 of the trace is minute 1 of the range"
    );
    assert!(trace.functions[1].arrivals.is_empty());
    // A range past the end of the trace is empty, not an error.
    let opts = AzureOptions {
        minutes: Some(100..200),
        ..even()
    };
    let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
    assert_eq!((trace.invocations(), trace.duration), (0, Duration::ZERO));
}

#[test]
fn a_malformed_cell_names_file_line_and_column() {
    let dir = invitro_fixture();
    let text = fs::read_to_string(dir.join("invocations.csv")).unwrap();
    let text = text.replacen("o1,a1,f2,http,3,0,0,0", "o1,a1,f2,http,3,0,0,x", 1);
    write(&dir, "invocations.csv", &text);
    let err = read_azure_2019(&dir, &even()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.ends_with(
            "invocations.csv line 3, column \"483\": expected a whole number, found \"x\""
        ),
        "{message}"
    );
    assert!(matches!(err, TraceError::Cell { line: 3, .. }));

    // A short row, a negative duration, a missing column.
    write(
        &dir,
        "invocations.csv",
        "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n",
    );
    let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
    assert!(
        message.contains("invocations.csv line 2: expected 6 fields as in the header, found 5"),
        "{message}"
    );
    write(
        &dir,
        "invocations.csv",
        "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f1,http,1,0\n",
    );
    let durations = format!("{DURATIONS_HEADER}\no,a,f1,45,100,10,200,10,10,20,-40,60,100,200\n");
    write(&dir, "durations.csv", &durations);
    let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
    assert!(
        message.contains(
            "durations.csv line 2, column \"percentile_Average_50\": \
             expected a non-negative number, found \"-40\""
        ),
        "{message}"
    );
    write(&dir, "invocations.csv", "HashOwner,HashFunction,1\no,f,1\n");
    let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
    assert!(message.contains("no column \"HashApp\""), "{message}");
}

#[test]
fn a_missing_file_names_the_file_and_the_format() {
    let dir = invitro_fixture();
    fs::remove_file(dir.join("durations.csv")).unwrap();
    let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
    assert!(message.contains("durations.csv: not found"), "{message}");
    assert!(message.contains("percentile_Average_"), "{message}");

    let empty = temp_dir("empty");
    let message = load(&empty, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("no trace recognised"), "{message}");
    let message = read_azure_2019(&empty, &even()).unwrap_err().to_string();
    assert!(message.contains("invocations.csv: not found"), "{message}");
    let message = read_azure_llm_2023(&empty, &LlmOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("TIMESTAMP,ContextTokens,GeneratedTokens"),
        "{message}"
    );
}

/// The Azure public dataset's layout, made up: days 02 and 03, columns 1..=1440.
#[test]
fn official_day_files_concatenate_and_join_memory_per_app() {
    let dir = temp_dir("official");
    let minutes: Vec<String> = (1..=1440).map(|m| m.to_string()).collect();
    let header = format!(
        "HashOwner,HashApp,HashFunction,Trigger,{}\n",
        minutes.join(",")
    );
    let row = |owner: &str, app: &str, func: &str, hits: &[(usize, u64)]| {
        let mut counts = vec![0u64; 1440];
        for &(minute, n) in hits {
            counts[minute - 1] = n;
        }
        let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
        format!("{owner},{app},{func},timer,{}\n", counts.join(","))
    };
    let day2 = header.clone() + &row("o", "a", "f1", &[(1, 1), (1440, 2)]);
    let day3 = header
        + &row("o", "a", "f1", &[(1, 1)])
        + &row("o", "a", "fx", &[(2, 1)])
        + &row("p", "b", "f1", &[(3, 1)]);
    write(&dir, "invocations_per_function_md.anon.d02.csv", &day2);
    write(&dir, "invocations_per_function_md.anon.d03.csv", &day3);
    write(
        &dir,
        "function_durations_percentiles.anon.d02.csv",
        &format!("{DURATIONS_HEADER}\no,a,f1,100,10,1,1,100,100,100,100,100,100,100\n"),
    );
    write(
        &dir,
        "function_durations_percentiles.anon.d03.csv",
        &format!(
            "{DURATIONS_HEADER}\no,a,f1,200,20,1,1,200,200,200,200,200,200,200\n\
             p,b,f1,300,1,1,1,300,300,300,300,300,300,300\n"
        ),
    );
    write(
        &dir,
        "app_memory_percentiles.anon.d02.csv",
        &format!(
            "HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
             o,a,5,300,1,1,1,1,1,1,1,1\n"
        ),
    );
    assert_eq!(detect(&dir).unwrap(), TraceFormat::Azure2019);
    let trace = load(
        &dir,
        &LoadOptions {
            azure_2019: even(),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(trace.duration, 2 * 24 * 60 * MIN);
    let ids: Vec<&str> = trace.functions.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        ["o/a/f1", "fx", "p/b/f1"],
        "a shared HashFunction gets a full id"
    );
    let f1: Vec<Duration> = trace.functions[0].arrivals.iter().map(|a| a.at).collect();
    let day = 24 * 60 * MIN;
    assert_eq!(
        f1,
        [
            Duration::from_secs(30),
            day - MIN + Duration::from_secs(15),
            day - MIN + Duration::from_secs(45),
            day + Duration::from_secs(30)
        ],
        "day 03 starts 24 h after day 02"
    );
    assert_eq!(
        trace.functions[1].arrivals[0].at,
        day + MIN + Duration::from_secs(30)
    );
    assert_eq!(
        trace.functions[0].durations.average(),
        Duration::from_millis(200),
        "largest Count wins"
    );
    assert_eq!(
        trace.functions[2].durations.average(),
        Duration::from_millis(300),
        "joined by owner and app too"
    );
    assert_eq!(
        [
            trace.functions[0].memory_mb,
            trace.functions[1].memory_mb,
            trace.functions[2].memory_mb
        ],
        [300, 300, 128],
        "the app's memory goes to each of its functions"
    );
    // Day files outside the minute range are not read.
    let opts = AzureOptions {
        minutes: Some(0..1440),
        ..even()
    };
    let trace = read_azure_2019(&dir, &opts).unwrap();
    assert_eq!((trace.functions.len(), trace.invocations()), (1, 3));
    assert_eq!(trace.duration, day);
}

/// invitro's `NNN_inv.csv` layout, made up: `minute_N` columns, no trigger, per-app memory.
#[test]
fn sized_invitro_files_read_with_minute_columns() {
    let dir = temp_dir("sized");
    write(
        &dir,
        "7_inv.csv",
        "HashFunction,HashOwner,HashApp,minute_1,minute_2,minute_3\r\n\
         h1,h1,h1,0,1,0\r\n\
         h2,h2,h2,2,0,1\r\n",
    );
    write(
        &dir,
        "7_run.csv",
        &format!("{DURATIONS_HEADER}\nh1,h1,h1,5,1,5,5,5,5,5,5,5,5,5\n"),
    );
    write(
        &dir,
        "7_mem.csv",
        &format!(
            "HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
             h2,h2,1,2048.5,1,1,1,1,1,1,1,1\n"
        ),
    );
    let trace = load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(trace.duration, 3 * MIN);
    assert_eq!(trace.invocations(), 4);
    let (h1, h2) = (&trace.functions[0], &trace.functions[1]);
    assert_eq!(
        (h1.trigger.as_deref(), h1.memory_mb, h2.memory_mb),
        (None, 128, 2049)
    );
    assert_eq!(per_minute(h2, 3), [2, 0, 1]);
    assert_eq!(h2.durations, DurationModel::Fixed(DEFAULT_DURATION));
}

#[test]
fn real_azure_2019_samples() {
    // One block per trace, so that the first is dropped before the second is read.
    {
        let dir = shared("azure_functions_2019_invitro_sample500_8h");
        let started = Instant::now();
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        eprintln!(
            "sample500_8h: {} functions, {} invocations, loaded in {:?}",
            trace.functions.len(),
            trace.invocations(),
            started.elapsed()
        );
        assert_eq!(trace.functions.len(), 500);
        assert_eq!(trace.invocations(), 3_037_902);
        assert_eq!(trace.duration, 8 * 60 * MIN);
        assert!(trace.functions.iter().all(|f| {
            f.arrivals.last().is_none_or(|a| a.at < trace.duration)
                && matches!(f.durations, DurationModel::Percentiles { .. })
                && (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&f.memory_mb)
        }));
        let max = trace.functions.iter().map(|f| f.arrivals.len()).max();
        assert!(max > Some(1_900_000), "{max:?}");
    }
    {
        let dir = shared("azure_functions_2019_invitro_sample1350_fullday");
        let started = Instant::now();
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        eprintln!("sample1350_fullday loaded in {:?}", started.elapsed());
        assert_eq!(trace.functions.len(), 1_350);
        assert_eq!(trace.invocations(), 927_272);
        assert_eq!(trace.duration, 24 * 60 * MIN);
    }
}
