//! Property-based fuzzing (proptest: cargo-fuzz needs a nightly toolchain, which this project
//! does not require) of what reads outside input: the configuration loader and its
//! environment overrides, the trace readers, the cache's keys, and the gateway's request
//! path. None may panic; each either accepts its input or says what is wrong with it. The
//! REPORT parser has its own properties beside it (src/lambda/report.rs). Cases proptest
//! finds are kept under proptest-regressions/ and replayed first on every run.

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use proptest::prelude::*;
use tower::ServiceExt;
use warmgate::clock::TokioClock;
use warmgate::config::Config;
use warmgate::gateway::Gateway;
use warmgate::lambda::{InvokeError, InvokeRequest, InvokeResponse, Invoker};
use warmgate::sim::trace::{read_azure_2021, read_azure_llm_2023, Azure2021Options, LlmOptions};

const CONFIG: &str = r#"
[backend]
kind = "endpoint"
url = "http://127.0.0.1:9001"

[access]
open = true

[[function]]
name = "sentiment"
targets = ["live", "standby"]
max_payload_bytes = 4096
"#;

/// Fragments a configuration is made of, in any order and number.
fn config_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("[gateway]\n".to_owned()),
            Just("[backend]\nkind = \"endpoint\"\nurl = \"http://x\"\n".to_owned()),
            Just("[backend]\nkind = \"embedded\"\nconfig = \"e.toml\"\ntime_scale = -1\n".to_owned()),
            Just("[warmer]\nenabled = true\npolicy = \"fixed-0min\"\n".to_owned()),
            Just("[access]\nopen = false\n".to_owned()),
            Just("[[access.keys]]\nid = \"a\"\nsha256 = \"00\"\nfunctions = [\"*\"]\n".to_owned()),
            Just("[access.jwt]\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"none\"]\nsubjects = []\n".to_owned()),
            Just("[[function]]\nname = \"f\"\n".to_owned()),
            Just("targets = []\n".to_owned()),
            Just("timeout_ms = 0\n".to_owned()),
            Just("max_in_flight = 0\n".to_owned()),
            Just("wait = { max_wait_ms = 99999999 }\n".to_owned()),
            Just("breaker = { failures = 0 }\n".to_owned()),
            Just("[function.cache]\nttl_s = 0\nignore = [\"x\", \"/\"]\n".to_owned()),
            Just("[cache.redis]\nurl = \"rediss://\"\ntimeout_ms = 0\n".to_owned()),
            Just("[provisioning]\nmode = \"apply\"\ndaily_budget_usd = -1\n".to_owned()),
            Just("provisioning = { min = 2, max = 1 }\n".to_owned()),
            "[a-z_]{1,12} = [0-9\"a-z]{0,8}\n",
            any::<String>(),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// JSON values of a few levels: objects, arrays, strings with escapes, numbers.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~\\n\"/é]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z/~]{0,6}", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `value` written with each object's members in reverse order and spaces between tokens.
fn reordered(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", serde_json::to_string(k).unwrap(), reordered(v)))
                .collect();
            format!("{{ {} }}", members.join(" ,\n "))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[ {} ]",
                items.iter().map(reordered).collect::<Vec<_>>().join(" , ")
            )
        }
        scalar => scalar.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_cache_key_ignores_member_order_and_whitespace(
        value in json_value(),
        ignore in proptest::collection::vec("(/[a-z~01]{0,3}){1,3}", 0..3),
    ) {
        use warmgate::cache::Key;
        let compact = serde_json::to_vec(&value).unwrap();
        let a = Key::new("f", "code", &compact, None, &ignore).unwrap();
        let b = Key::new("f", "code", reordered(&value).as_bytes(), None, &ignore).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_cache_key_of_any_bytes_is_a_key_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = warmgate::cache::Key::new("f", "code", &bytes, None, &["/a".to_string()]);
    }

    #[test]
    fn the_configuration_loader_never_panics(
        text in config_text(),
        env in proptest::collection::vec(("WARMGATE_[A-Z_]{0,20}", "[ -~]{0,20}"), 0..4),
    ) {
        match Config::parse(&text, env, "fuzz.toml") {
            Ok(config) => prop_assert!(!config.functions.is_empty()),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn the_azure_2021_reader_never_panics(rows in proptest::collection::vec(
        ("[a-f0-9]{0,6}", "[a-f0-9]{0,6}", "-?[0-9]{0,6}(\\.[0-9]{0,3})?", "-?[0-9]{0,4}(\\.[0-9]{0,3})?|NaN|inf|x"),
        0..20,
    ), extra in "[ -~\n,\"]{0,40}") {
        let mut text = String::from("app,func,end_timestamp,duration\n");
        for (app, func, end, duration) in rows {
            text.push_str(&format!("{app},{func},{end},{duration}\n"));
        }
        text.push_str(&extra);
        let file = temp_file("AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv", &text);
        let _ = read_azure_2021(&file, &Azure2021Options::default());
    }

    #[test]
    fn the_llm_reader_never_panics(rows in proptest::collection::vec(
        ("20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,7})?|[ -~]{0,12}", "-?[0-9]{0,7}", "-?[0-9]{0,7}"),
        0..20,
    )) {
        let mut text = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
        for (at, context, generated) in rows {
            text.push_str(&format!("{at},{context},{generated}\n"));
        }
        let file = temp_file("AzureLLMInferenceTrace_code.csv", &text);
        let _ = read_azure_llm_2023(&file, &LlmOptions::default());
    }

    #[test]
    fn every_request_gets_an_answer_and_none_is_a_panic(
        path in prop_oneof![
            Just("/v1/functions/sentiment/invoke".to_owned()),
            Just("/2015-03-31/functions/sentiment/invocations".to_owned()),
            "/v1/functions/[ -~&&[^/?#]]{0,20}/invoke",
            "/2015-03-31/functions/[a-zA-Z0-9:%_-]{0,40}/invocations(\\?Qualifier=[ -~&&[^#]]{0,10})?",
            "/[ -~&&[^?#]]{0,30}",
        ],
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT")],
        headers in proptest::collection::vec((
            prop_oneof![
                Just("x-amz-invocation-type"), Just("x-amz-client-context"), Just("x-amz-log-type"),
                Just("content-type"), Just("x-api-key"), Just("authorization"),
                Just("traceparent"), Just("x-amzn-trace-id"),
            ],
            "[ -~]{0,40}",
        ), 0..4),
        body in prop_oneof![
            Just(b"{}".to_vec()),
            "[ -~]{0,64}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..8192),
        ],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let status = runtime.block_on(async {
            let gateway = gateway().await;
            let mut request = Request::builder().method(method).uri(&path);
            for (name, value) in &headers {
                request = request.header(*name, value.as_str());
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return None; // not a request hyper would have parsed
            };
            let response = gateway.app().oneshot(request).await.unwrap();
            Some(response.status())
        });
        if let Some(status) = status {
            prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{} {}", method, path);
            prop_assert!(status.as_u16() < 600);
        }
    }
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warmgate-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// A Lambda that answers every invocation with its payload, instantly.
struct Echo;

#[async_trait::async_trait]
impl Invoker for Echo {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        Ok(InvokeResponse {
            status: 200,
            payload: req.payload,
            executed_version: Some("1".into()),
            function_error: None,
            report: None,
            log_tail: None,
        })
    }
}

async fn gateway() -> Arc<Gateway> {
    let config = Config::parse(CONFIG, [], "fuzz").unwrap();
    let gateway = Gateway::new(
        config,
        Arc::new(Echo),
        Arc::new(common::SameCode),
        Arc::new(TokioClock::new()),
    );
    gateway.refresh_targets().await;
    gateway
}
