//! Who may call, end to end against the emulator: API keys (401, 403, per-key rates) and JWTs
//! (issuer, audience, expiry, algorithm, signing key).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KEY_A: &str = "wg_key-of-team-a-that-is-long-and-random-enough-000";
const KEY_B: &str = "wg_key-of-team-b-that-is-long-and-random-enough-111";
const KEY_SLOW: &str = "wg_key-of-a-rate-limited-caller-2222222222222222222";

fn sha256(key: &str) -> String {
    warmgate::gateway::access::hex(&Sha256::digest(key.as_bytes()))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The common gateway, closed: two keys and a token issuer.
fn closed_gateway() -> String {
    let access = format!(
        r#"
[access]
open = false

[[access.keys]]
id = "team-a"
sha256 = "{}"
functions = ["*"]

[[access.keys]]
id = "team-b"
sha256 = "{}"
functions = ["tiny"]

[[access.keys]]
id = "slow"
sha256 = "{}"
functions = ["sentiment"]
rate_per_second = 1
burst = 2

[access.jwt]
issuer = "https://issuer.test"
audience = "warmgate"
algorithms = ["EdDSA"]
jwks_file = "{}"
subjects = [{{ subject = "svc-embed", functions = ["sentiment"] }}]
"#,
        sha256(KEY_A),
        sha256(KEY_B),
        sha256(KEY_SLOW),
        fixture("jwks-test.json").display()
    );
    common::GATEWAY.replace("\n[access]\nopen = true\n", &access)
}

async fn call(
    stack: &common::Stack,
    function: &str,
    auth: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut request = stack
        .http
        .post(stack.url(&format!("/v1/functions/{function}/invoke")))
        .body(r#"{"text":"hi"}"#);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn key(k: &str) -> Option<(&'static str, String)> {
    Some(("x-api-key", k.to_string()))
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed by `pem` (an Ed25519 key in PKCS#8 PEM), with `claims`.
fn token(pem: &str, claims: Value) -> String {
    let pem = std::fs::read(fixture(pem)).unwrap();
    let key = EncodingKey::from_ed_pem(&pem).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("test-1".into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn claims(sub: &str, aud: &str, exp: u64) -> Value {
    json!({ "iss": "https://issuer.test", "aud": aud, "sub": sub, "exp": exp })
}

#[tokio::test]
async fn api_keys_admit_their_holders_to_their_functions_only() {
    let stack = common::start_with(&closed_gateway(), true).await;
    let (status, body) = call(&stack, "sentiment", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, body) = call(&stack, "sentiment", key("wg_not-a-key")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A key differing from a real one in its last character is just as unknown.
    let near = format!("{}1", &KEY_A[..KEY_A.len() - 1]);
    assert_eq!(
        call(&stack, "sentiment", key(&near)).await.0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        call(&stack, "sentiment", key(KEY_A)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&stack, "sentiment", bearer(KEY_A)).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&stack, "sentiment", key(KEY_B)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("team-b"));
    assert_eq!(call(&stack, "tiny", key(KEY_B)).await.0, StatusCode::OK);
    // No function name leaks to a caller without credentials: 401 before 404.
    assert_eq!(call(&stack, "nope", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&stack, "nope", key(KEY_A)).await.0,
        StatusCode::NOT_FOUND
    );

    // Nothing refused reached Lambda.
    let invoked: u64 = stack
        .emulator
        .emulator()
        .snapshot()
        .functions
        .iter()
        .flat_map(|f| &f.versions)
        .map(|v| v.stats.invocations() - v.stats.pings)
        .sum();
    assert_eq!(invoked, 3, "the three admitted calls, and no other");
}

#[tokio::test]
async fn an_environment_report_needs_a_key_allowed_its_function() {
    let stack = common::start_with(&closed_gateway(), true).await;
    for (path, body) in [
        ("ended", r#"{"age_ms": 9000000, "reason": "spindown"}"#),
        ("calls", r#"{"event": "started", "request_id": "r-1"}"#),
    ] {
        let report = |auth: Option<(&'static str, String)>| {
            let mut request = stack
                .http
                .post(stack.url(&format!("/v1/functions/sentiment/environments/{path}")))
                .body(body);
            if let Some((name, value)) = auth {
                request = request.header(name, value);
            }
            async move { request.send().await.expect("an answer").status() }
        };
        assert_eq!(report(None).await, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(report(key(KEY_B)).await, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(report(key(KEY_A)).await, StatusCode::ACCEPTED, "{path}");
    }
}

#[tokio::test]
async fn a_key_over_its_rate_is_answered_429_with_retry_after() {
    let stack = common::start_with(&closed_gateway(), true).await;
    // A burst of 2 at 1 a second: of four calls at once, two are over.
    let calls = (0..4).map(|_| async {
        let response = stack
            .http
            .post(stack.url("/v1/functions/sentiment/invoke"))
            .header("x-api-key", KEY_SLOW)
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let retry_after = response.headers().contains_key("retry-after");
        let body: Value = response.json().await.unwrap();
        (status, retry_after, body["error"]["code"].clone())
    });
    let answers = futures::future::join_all(calls).await;
    let over: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(over.len(), 2, "{answers:?}");
    assert!(over
        .iter()
        .all(|(_, retry_after, code)| *retry_after && code == "rate_limited"));
    let served = answers
        .iter()
        .filter(|(s, ..)| *s == StatusCode::OK)
        .count();
    assert_eq!(served, 2, "{answers:?}");
    // Another key is not slowed by it.
    assert_eq!(
        call(&stack, "sentiment", key(KEY_A)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tokens_are_checked_for_signer_issuer_audience_expiry_and_subject() {
    let stack = common::start_with(&closed_gateway(), true).await;
    stack.gateway.gateway().reload_jwks().await;
    let later = now_s() + 600;
    let good = token(
        "jwt-test-ed25519.pem",
        claims("svc-embed", "warmgate", later),
    );
    assert_eq!(
        call(&stack, "sentiment", bearer(&good)).await.0,
        StatusCode::OK
    );
    // Allowed sentiment only.
    assert_eq!(
        call(&stack, "tiny", bearer(&good)).await.0,
        StatusCode::FORBIDDEN
    );

    let refused = [
        (
            "expired",
            token(
                "jwt-test-ed25519.pem",
                claims("svc-embed", "warmgate", now_s() - 600),
            ),
        ),
        (
            "another audience",
            token("jwt-test-ed25519.pem", claims("svc-embed", "other", later)),
        ),
        (
            "another issuer",
            token(
                "jwt-test-ed25519.pem",
                json!({ "iss": "https://evil.test", "aud": "warmgate", "sub": "svc-embed", "exp": later }),
            ),
        ),
        (
            "signed by a key not in the set",
            token(
                "jwt-other-ed25519.pem",
                claims("svc-embed", "warmgate", later),
            ),
        ),
        ("tampered", {
            let mut parts: Vec<String> = good.split('.').map(String::from).collect();
            parts[1] = base64_url(&json!({"iss": "https://issuer.test", "aud": "warmgate", "sub": "svc-embed", "exp": later + 1}).to_string());
            parts.join(".")
        }),
        ("unsigned (alg none)", {
            let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
            let body = base64_url(&claims("svc-embed", "warmgate", later).to_string());
            format!("{header}.{body}.")
        }),
    ];
    for (what, token) in refused {
        let (status, body) = call(&stack, "sentiment", bearer(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
    let stranger = token(
        "jwt-test-ed25519.pem",
        claims("svc-unknown", "warmgate", later),
    );
    assert_eq!(
        call(&stack, "sentiment", bearer(&stranger)).await.0,
        StatusCode::FORBIDDEN
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_key_set_served_at_a_url_is_read_and_read_again() {
    // A JWKS endpoint whose document can be changed, as an identity provider rotates keys.
    let document = Arc::new(parking_lot::Mutex::new(r#"{"keys": []}"#.to_string()));
    let served = document.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move { served.lock().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = closed_gateway().replace(
        &format!("jwks_file = \"{}\"", fixture("jwks-test.json").display()),
        &format!("jwks_url = \"{url}\""),
    );
    let stack = common::start_with(&config, true).await;
    let good = token(
        "jwt-test-ed25519.pem",
        claims("svc-embed", "warmgate", now_s() + 600),
    );
    stack.gateway.gateway().reload_jwks().await;
    assert_eq!(
        call(&stack, "sentiment", bearer(&good)).await.0,
        StatusCode::UNAUTHORIZED,
        "the key set is empty"
    );
    *document.lock() = std::fs::read_to_string(fixture("jwks-test.json")).unwrap();
    stack.gateway.gateway().reload_jwks().await;
    assert_eq!(
        call(&stack, "sentiment", bearer(&good)).await.0,
        StatusCode::OK
    );
}
