//! What the system under test needs for a run: the emulator's spec (one function per selected
//! trace function, as the simulator builds it) and a gateway configuration in front of it.
//!
//! Function `i` of the selection is `f{i}` everywhere: in the emulator, in the gateway's
//! configuration, and in the generator's request paths.

use std::fmt::Write as _;

use warmgate::platform::PlatformSpec;
use warmgate::sim::engine::{platform_spec, Reclaim, SimSettings, LIVE_ALIAS};
use warmgate::sim::trace::Trace;

/// The init durations the emulated functions draw, as the simulator's `--init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Init {
    /// A small Python or Node function: median 1 s.
    Small,
    /// A function that loads an ML model at start: median 6 s.
    ModelLoading,
}

/// The names of the selected functions, as the emulator and the gateway know them.
pub fn function_names(trace: &Trace) -> Vec<String> {
    (0..trace.functions.len())
        .map(|i| format!("f{i}"))
        .collect()
}

/// The emulator's spec for `trace`: the simulator's platform (Lambda's idle reclaim and
/// lifetime, a large account), each function with one version and the alias `live`, its
/// handler at the trace's average duration, init drawn from `init`, seeded.
pub fn emulator_spec(trace: &Trace, init: Init, seed: u64) -> PlatformSpec {
    let settings = SimSettings {
        seed,
        init_ms: match init {
            Init::Small => SimSettings::small_function_init(),
            Init::ModelLoading => SimSettings::model_loading_init(),
        },
        ..SimSettings::default()
    };
    platform_spec(trace, &settings, Reclaim::AsLambda)
}

/// The spec as the TOML `warmgate emulator --config` reads.
pub fn emulator_toml(spec: &PlatformSpec) -> Result<String, String> {
    let body = toml::to_string(spec).map_err(|e| format!("cannot write the emulator spec: {e}"))?;
    Ok(format!(
        "# Written by warmgate-load: the emulated functions of a trace replay.\n\
         # warmgate emulator --config THIS --time-scale N (the same N as the load's).\n{body}"
    ))
}

/// How the gateway under test runs.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    pub listen: String,
    pub metrics_listen: String,
    /// The emulator's URL.
    pub backend_url: String,
    /// Keep-alive pings by the predictive warmer, or none.
    pub warmer: bool,
    /// The emulator's time scale: the gateway's clock runs at it, so that the warmer's
    /// decisions (idle ages, ping times) are in the emulator's time.
    pub time_scale: f64,
}

/// A gateway configuration with one `[[function]]` per selected function, open access (a
/// local load test), and limits that never shed the trace's load.
pub fn gateway_toml(names: &[String], plan: &GatewayPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by warmgate-load: warmgate in front of the emulator of a trace replay.\n\
         [gateway]\nlisten = \"{}\"\nmetrics_listen = \"{}\"\nmax_in_flight = 100000\n\
         max_connections = 100000\n\n\
         [warmer]\nenabled = {}\npolicy = \"warmer\"\n\n\
         [backend]\nkind = \"endpoint\"\nurl = \"{}\"\ntime_scale = {:?}",
        plan.listen, plan.metrics_listen, plan.warmer, plan.backend_url, plan.time_scale
    );
    let _ = writeln!(s, "\n[access]\nopen = true");
    for name in names {
        // Lambda's longest timeout: the trace's long handlers run to their end.
        let _ = writeln!(
            s,
            "\n[[function]]\nname = \"{name}\"\ntargets = [\"{LIVE_ALIAS}\"]\ntimeout_ms = 900000"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use warmgate::config::Config;
    use warmgate::platform::dist::Dist;
    use warmgate::sim::trace::{Arrival, DurationModel, TraceFormat, TraceFunction};

    fn trace() -> Trace {
        let f = |id: &str, ms: u64| TraceFunction {
            lambda: Default::default(),
            id: id.into(),
            app: id.into(),
            trigger: None,
            memory_mb: 512,
            durations: DurationModel::Fixed(Duration::from_millis(ms)),
            arrivals: vec![Arrival {
                at: Duration::ZERO,
                duration: None,
                tokens: None,
            }],
        };
        Trace {
            name: "t".into(),
            format: TraceFormat::Azure2021,
            functions: vec![f("a", 40), f("b", 250)],
            duration: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_emulator_spec_reads_back_with_the_chosen_init() {
        let spec = emulator_spec(&trace(), Init::ModelLoading, 9);
        let back = PlatformSpec::from_toml(&emulator_toml(&spec).unwrap()).unwrap();
        let names: Vec<&str> = back.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, function_names(&trace()));
        assert_eq!(back.settings.seed, 9);
        let f = &back.functions[1];
        assert_eq!(f.memory_mb, 512);
        assert_eq!(f.init_ms, SimSettings::model_loading_init());
        assert_eq!(f.duration_ms, Dist::Fixed(250.0));
        assert_eq!(f.aliases[0].name, LIVE_ALIAS);
    }

    #[test]
    fn the_gateway_configuration_is_valid_and_names_every_function() {
        let names = function_names(&trace());
        let plan = GatewayPlan {
            listen: "127.0.0.1:9402".into(),
            metrics_listen: "127.0.0.1:9412".into(),
            backend_url: "http://127.0.0.1:9401".into(),
            warmer: true,
            time_scale: 60.0,
        };
        let config = Config::parse(&gateway_toml(&names, &plan), [], "test").unwrap();
        assert!(config.warmer.enabled);
        assert_eq!(config.warmer.policy, "warmer");
        assert_eq!(config.backend.time_scale(), 60.0);
        let got: Vec<&str> = config.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(got, ["f0", "f1"]);
    }
}
