//! The configuration's parsing, overrides and validation, and the shipped files.

use super::*;

const BASE: &str = r#"
[backend]
kind = "endpoint"
url = "http://127.0.0.1:9001"

[access]
open = true

[[function]]
name = "sentiment"
targets = ["live", "1"]
"#;

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::parse(text, env, "test.toml")
}

#[test]
fn the_shipped_configurations_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for file in ["warmgate.toml", "aws.example.toml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        Config::parse(&text, [], file).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let local = Config::parse(
        &std::fs::read_to_string(dir.join("warmgate.toml")).unwrap(),
        [],
        "local",
    )
    .unwrap();
    let Backend::Embedded { config, .. } = local.backend else {
        panic!("the local default embeds the emulator");
    };
    crate::platform::PlatformSpec::from_file(&dir.join(config)).expect("the emulator's file");
}

#[test]
fn defaults_fill_the_rest() {
    let c = parse(BASE, &[]).unwrap();
    let f = c.function("sentiment").unwrap();
    assert_eq!(f.lambda_name(), "sentiment");
    assert_eq!(f.max_payload_bytes, LAMBDA_PAYLOAD_LIMIT);
    assert!(!f.idempotent);
    assert_eq!(f.probe, ProbePolicy::default());
    assert!(f.probe.enabled);
    assert_eq!(c.gateway.listen.port(), 8080);
}

#[test]
fn environment_overrides_any_section_key() {
    let c = parse(
        BASE,
        &[
            ("WARMGATE_GATEWAY__LISTEN", "0.0.0.0:80"),
            ("WARMGATE_GATEWAY__MAX_IN_FLIGHT", "7"),
            ("WARMGATE_BACKEND__URL", "http://lambda.local:1"),
            ("WARMGATE_CONFIG", "ignored.toml"),
            ("HOME", "/root"),
            // A longer margin lets a deployment jitter its rounds longer.
            ("WARMGATE_WARMER__REFRESH_MARGIN_MS", "5000"),
            ("WARMGATE_WARMER__JITTER_MS", "3000"),
        ],
    )
    .unwrap();
    assert_eq!(c.warmer.refresh_margin_ms, 5000);
    assert_eq!(c.warmer.jitter_ms, 3000);
    assert_eq!(c.gateway.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.gateway.max_in_flight, 7);
    assert!(matches!(c.backend, Backend::Endpoint { url, .. } if url == "http://lambda.local:1"));
    let c = parse(BASE, &[("WARMGATE_BACKEND__KIND", "aws")]);
    assert!(c.is_err(), "kind aws rejects the endpoint's url key");
}

#[test]
fn the_cache_is_configured_per_function_and_redis_from_the_environment() {
    let cached = format!("{BASE}[function.cache]\nttl_s = 60\nignore = [\"/request_id\"]\n");
    let c = parse(
        &cached,
        &[
            ("WARMGATE_CACHE__REDIS__URL", "rediss://cache.internal:6379"),
            ("WARMGATE_CACHE__REDIS__PASSWORD", "s3cret"),
        ],
    )
    .unwrap();
    let f = &c.functions[0];
    assert_eq!(f.cache.as_ref().map(|c| c.ttl_s), Some(60));
    assert!(
        f.coalesces(),
        "a cached function coalesces unless told not to"
    );
    let redis = c.cache.redis.as_ref().expect("set from the environment");
    assert_eq!(redis.url, "rediss://cache.internal:6379");
    assert_eq!(redis.timeout_ms, 5);
    assert_eq!(redis.password.as_deref(), Some("s3cret"));
    // Without a cache section, nothing is cached or shared.
    let plain = parse(BASE, &[]).unwrap();
    assert!(plain.functions[0].cache.is_none() && !plain.functions[0].coalesces());

    for (text, env, names) in [
        (
            cached.replace("ttl_s = 60", "ttl_s = 0"),
            vec![],
            "function[0].cache.ttl_s",
        ),
        (
            cached.replace("\"/request_id\"", "\"request_id\""),
            vec![],
            "function[0].cache.ignore",
        ),
        (
            cached.clone(),
            vec![("WARMGATE_CACHE__REDIS__URL", "http://nope")],
            "cache.redis.url",
        ),
        (
            cached.clone(),
            vec![("WARMGATE_CACHE__REDIS", "x")],
            "cache.redis",
        ),
    ] {
        let error = parse(&text, &env).unwrap_err().to_string();
        assert!(error.contains(names), "{names}: {error}");
    }
}

#[test]
fn provisioning_is_off_advises_or_applies_within_bounds() {
    assert_eq!(
        parse(BASE, &[]).unwrap().provisioning.mode,
        ProvisioningMode::Off
    );
    let c = parse(BASE, &[("WARMGATE_PROVISIONING__MODE", "advise")]).unwrap();
    assert_eq!(c.provisioning.mode, ProvisioningMode::Advise);
    let c = parse(BASE, &[("WARMGATE_PROVISIONING__MODE", "apply")]).unwrap();
    assert_eq!(c.provisioning.mode, ProvisioningMode::Apply);
    let error = parse(BASE, &[("WARMGATE_PROVISIONING__MODE", "always")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("provisioning.mode") && error.contains("advise"),
        "{error}"
    );
    let bounds = format!("{BASE}provisioning = {{ min = 3, max = 2 }}\n");
    let error = parse(&bounds, &[]).unwrap_err().to_string();
    assert!(error.contains("function[0].provisioning.min"), "{error}");
    let budget = parse(BASE, &[("WARMGATE_PROVISIONING__DAILY_BUDGET_USD", "-1")])
        .unwrap_err()
        .to_string();
    assert!(budget.contains("provisioning.daily_budget_usd"), "{budget}");
    assert_eq!(parse(BASE, &[]).unwrap().provisioning.lease_ttl_ms, 30_000);
    let ttl = parse(BASE, &[("WARMGATE_PROVISIONING__LEASE_TTL_MS", "0")])
        .unwrap_err()
        .to_string();
    assert!(ttl.contains("provisioning.lease_ttl_ms"), "{ttl}");
}

#[test]
fn keep_alive_is_shared_by_default_and_a_replica_ttl_out_of_bounds_is_named() {
    let c = parse(BASE, &[]).unwrap();
    assert!(c.warmer.share_keep_alive);
    assert_eq!(c.warmer.replica_ttl_ms, 6_000);
    for bad in ["0", "120000"] {
        let error = parse(BASE, &[("WARMGATE_WARMER__REPLICA_TTL_MS", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("warmer.replica_ttl_ms") && error.contains(bad),
            "{error}"
        );
    }
}

#[test]
fn an_endpoint_runs_the_gateway_clock_at_its_time_scale() {
    let c = parse(BASE, &[]).unwrap();
    assert_eq!(c.backend.time_scale(), 1.0);
    let c = parse(BASE, &[("WARMGATE_BACKEND__TIME_SCALE", "60")]).unwrap();
    assert_eq!(c.backend.time_scale(), 60.0);
    let error = parse(BASE, &[("WARMGATE_BACKEND__TIME_SCALE", "0")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("backend.time_scale"), "{error}");
}

#[test]
fn access_is_closed_by_default_except_with_the_embedded_emulator() {
    let closed = BASE.replace("[access]\nopen = true\n", "");
    let error = parse(&closed, &[]).unwrap_err().to_string();
    assert!(
        error.contains("`access`") && error.contains("keygen"),
        "{error}"
    );
    let embedded = closed.replace(
        "kind = \"endpoint\"\nurl = \"http://127.0.0.1:9001\"",
        "kind = \"embedded\"\nconfig = \"emulator.toml\"",
    );
    let c = parse(&embedded, &[]).unwrap();
    assert!(c.access.is_open(&c.backend));
    // Keys given as a secret in the environment, as on Fargate.
    let digest = "ab".repeat(32);
    let keys =
        format!("[{{ id = \"team-a\", sha256 = \"{digest}\", functions = [\"sentiment\"] }}]");
    let c = parse(&closed, &[("WARMGATE_ACCESS__KEYS", &keys)]).unwrap();
    assert!(!c.access.is_open(&c.backend));
    assert_eq!(c.access.keys[0].id, "team-a");
}

/// Configuration text, environment, and what the error must name.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn errors_name_the_key() {
    let cases: &[Case] = &[
        (
            BASE,
            &[("WARMGATE_GATEWAY__LISTEN", "nowhere")],
            "gateway.listen",
        ),
        (
            BASE,
            &[("WARMGATE_GATEWAY__MAX_IN_FLIGHT", "0")],
            "gateway.max_in_flight",
        ),
        (
            &BASE.replace("\"sentiment\"", "\"sent iment\""),
            &[],
            "function[0].name",
        ),
        (
            &BASE.replace("[\"live\", \"1\"]", "[]"),
            &[],
            "function[0].targets",
        ),
        (
            &format!("{BASE}lambda_name = \"arn:aws:lambda:us-east-1:1:function:x\"\n"),
            &[],
            "function[0].lambda_name",
        ),
        (
            &format!("{BASE}timeout_ms = 0\n"),
            &[],
            "function[0].timeout_ms",
        ),
        (
            &format!("{BASE}max_payload_bytes = 99999999\n"),
            &[],
            "function[0].max_payload_bytes",
        ),
        (
            &format!("{BASE}wait = {{ waiters_per_burst_ping = 0 }}\n"),
            &[],
            "function[0].wait.waiters_per_burst_ping",
        ),
        (&format!("{BASE}colour = \"blue\"\n"), &[], "colour"),
        (
            &format!("{BASE}probe = {{ every_s = 5 }}\n"),
            &[],
            "function[0].probe",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__POLICY", "fixed-5mins")],
            "warmer.policy",
        ),
        (
            BASE,
            // Named before the refresh margin, which it bounds (2 s is not below half of 1 s).
            &[("WARMGATE_WARMER__IDLE_LIFETIME_S", "1")],
            "warmer.idle_lifetime_s",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__JITTER_MS", "10000")],
            "warmer.jitter_ms",
        ),
        (
            BASE,
            &[
                ("WARMGATE_WARMER__REFRESH_MARGIN_MS", "5000"),
                ("WARMGATE_WARMER__JITTER_MS", "5000"),
            ],
            "warmer.jitter_ms",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__REFRESH_MARGIN_MS", "0")],
            "warmer.refresh_margin_ms",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__REFRESH_MARGIN_MS", "150000")],
            "warmer.refresh_margin_ms",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__ROUND_HOLD_MS", "500")],
            "warmer.round_hold_ms",
        ),
        (
            BASE,
            &[("WARMGATE_WARMER__MAX_ROUND_HOLD_MS", "60000")],
            "warmer.max_round_hold_ms",
        ),
        (&BASE.replace("http://", "ftp://"), &[], "backend.url"),
        (
            BASE,
            &[(
                "WARMGATE_ACCESS__KEYS",
                "[{ id = \"a\", sha256 = \"not-hex\", functions = [\"*\"] }]",
            )],
            "access.keys[0].sha256",
        ),
        (
            BASE,
            &[(
                "WARMGATE_ACCESS__KEYS",
                "[{ id = \"a\", sha256 = \"00000000000000000000000000000000000000000000000000000000000000ff\", functions = [\"nope\"] }]",
            )],
            "access.keys[0].functions",
        ),
        (
            BASE,
            &[("WARMGATE_GATEWAY__HEADER_READ_TIMEOUT_MS", "0")],
            "gateway.header_read_timeout_ms",
        ),
        (
            &format!("{BASE}[[function]]\nname = \"sentiment\"\n"),
            &[],
            "declared twice",
        ),
    ];
    for (text, env, needle) in cases {
        let err = parse(text, env).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should name {needle:?}");
    }
}
