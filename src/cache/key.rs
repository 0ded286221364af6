//! The cache key: the function, the code that would serve it (CodeSha256), and the payload
//! in canonical JSON (object keys sorted, no whitespace), with configured members left out.
//! Pure: the same request always gives the same key, whichever replica computes it.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of what identifies an answer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of `payload` (JSON; empty is `{}`'s stand-in, as Lambda takes it) for
    /// `function` running `code_sha256`, with the members at `ignore` left out. The client
    /// context reaches the function, so it is part of the key too.
    pub fn new(
        function: &str,
        code_sha256: &str,
        payload: &[u8],
        client_context: Option<&str>,
        ignore: &[String],
    ) -> Result<Self, serde_json::Error> {
        let canonical = canonical_payload(payload, ignore)?;
        let mut digest = Sha256::new();
        for part in [function.as_bytes(), code_sha256.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        match client_context {
            None => digest.update([0]),
            Some(context) => {
                digest.update([1]);
                digest.update((context.len() as u64).to_be_bytes());
                digest.update(context.as_bytes());
            }
        }
        digest.update(&canonical);
        Ok(Self(digest.finalize().into()))
    }

    pub fn hex(&self) -> String {
        crate::gateway::access::hex(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.hex()[..16])
    }
}

/// `payload` in canonical JSON without the members at `ignore` (pointers to members that
/// are absent are fine: not every request carries every field).
pub fn canonical_payload(payload: &[u8], ignore: &[String]) -> Result<Vec<u8>, serde_json::Error> {
    let mut value: Value = if payload.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(payload)?
    };
    for pointer in ignore {
        remove(&mut value, pointer);
    }
    let mut out = Vec::with_capacity(payload.len());
    write_canonical(&value, &mut out);
    Ok(out)
}

/// Removes the member `pointer` (RFC 6901) names, if it is there.
fn remove(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

/// Writes `value` with object keys in byte order and no whitespace, whatever order the map
/// keeps (serde_json's `preserve_order` may be on through another crate).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("a string serialises");
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a scalar serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(payload: &str, ignore: &[&str]) -> Key {
        let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        Key::new("f", "sha", payload.as_bytes(), None, &ignore).unwrap()
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = key(r#"{"prompt":"hi","params":{"t":0,"k":5}}"#, &[]);
        let b = key(
            "{ \"params\" : {\"k\":5, \"t\":0},\n \"prompt\":\"hi\" }",
            &[],
        );
        assert_eq!(a, b);
        assert_ne!(a, key(r#"{"prompt":"ho","params":{"t":0,"k":5}}"#, &[]));
        // Array order is meaning, not layout.
        assert_ne!(key("[1,2]", &[]), key("[2,1]", &[]));
    }

    #[test]
    fn ignored_members_are_left_out_wherever_they_are() {
        let ignore = ["/request_id", "/meta/sent_at", "/absent/too"];
        let a = key(
            r#"{"prompt":"hi","request_id":"1","meta":{"sent_at":5,"lang":"en"}}"#,
            &ignore,
        );
        let b = key(
            r#"{"meta":{"lang":"en","sent_at":9},"prompt":"hi","request_id":"2"}"#,
            &ignore,
        );
        assert_eq!(a, b);
        let c = key(
            r#"{"prompt":"hi","meta":{"lang":"fr","sent_at":9}}"#,
            &ignore,
        );
        assert_ne!(a, c, "a member not ignored still counts");
        assert_eq!(
            key(r#"{"a/b":1,"x":2}"#, &["/a~1b"]),
            key(r#"{"x":2}"#, &[]),
            "pointer escapes"
        );
    }

    #[test]
    fn function_code_and_client_context_are_part_of_the_key() {
        let p = br#"{"prompt":"hi"}"#;
        let base = Key::new("f", "sha-a", p, None, &[]).unwrap();
        assert_ne!(base, Key::new("g", "sha-a", p, None, &[]).unwrap());
        assert_ne!(base, Key::new("f", "sha-b", p, None, &[]).unwrap());
        assert_ne!(base, Key::new("f", "sha-a", p, Some("e30="), &[]).unwrap());
        // Field boundaries are length-prefixed: ("fs", "ha") is not ("f", "sha").
        assert_ne!(base, Key::new("fs", "ha-a", p, None, &[]).unwrap());
    }

    #[test]
    fn empty_payload_is_the_empty_object() {
        assert_eq!(key("", &[]), key("{}", &[]));
        assert!(Key::new("f", "s", b"{nope", None, &[]).is_err());
    }
}
