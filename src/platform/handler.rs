//! What an emulated handler answers: a deterministic stand-in for an inference result.
//!
//! The answer depends only on the code (CodeSha256) and the payload, so two targets that run
//! the same code answer alike, and a cache's hits can be checked against a fresh invocation.

use sha2::{Digest, Sha256};

/// Labels of the stand-in classifier.
const LABELS: [&str; 4] = ["positive", "negative", "neutral", "mixed"];

/// The handler's successful answer to `payload`.
pub fn response(function: &str, code_sha256: &str, payload: &[u8]) -> Vec<u8> {
    let digest = Sha256::new()
        .chain_update(code_sha256.as_bytes())
        .chain_update([0u8])
        .chain_update(payload)
        .finalize();
    let label = LABELS[usize::from(digest[0]) % LABELS.len()];
    let score = f64::from(u16::from_be_bytes([digest[1], digest[2]])) / f64::from(u16::MAX);
    let input = hex(&Sha256::digest(payload));
    format!(
        r#"{{"model":"{function}","label":"{label}","score":{score:.4},"input_sha256":"{input}"}}"#
    )
    .into_bytes()
}

/// The body Lambda returns for an unhandled error.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "errorMessage": message,
        "errorType": error_type,
        "stackTrace": [],
    }))
    .expect("a JSON object serialises")
}

/// The body a keep-alive ping returns: it names the environment that answered, as the
/// convention asks of a handler (on Lambda, `context.log_stream_name`, one per execution
/// environment), so that the gateway can tell whether a round reached distinct environments.
pub fn ping_response(environment: super::EnvId) -> Vec<u8> {
    format!(r#"{{"warmgate":"pong","environment":"environment-{environment}"}}"#).into_bytes()
}

/// CodeSha256 as Lambda reports it: base64 of the SHA-256 of the deployment package.
pub fn code_sha256(code: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(code.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_code_and_payload_same_answer() {
        let a = response("f", "sha-a", br#"{"text":"hi"}"#);
        assert_eq!(a, response("f", "sha-a", br#"{"text":"hi"}"#));
        assert_ne!(a, response("f", "sha-a", br#"{"text":"ho"}"#));
        assert_ne!(a, response("f", "sha-b", br#"{"text":"hi"}"#));
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["model"], "f");
    }
}
