//! Who may call: API keys and JSON Web Tokens, each allowed a list of functions and,
//! optionally, a request rate of its own. A layer on the invoke routes checks every request
//! before its body is read: 401 without valid credentials, 403 for a function not allowed,
//! 429 over the caller's rate.
//!
//! API keys are stored as SHA-256 digests: keys are 256-bit random strings
//! (`warmgate keygen`), so a fast hash loses nothing to guessing, and the configuration holds
//! no secret. A presented key is hashed and compared with every stored digest in constant
//! time ([`Access::key_holder`]), so response time tells nothing about how near a guess was.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ErrorKind, GatewayError};
use crate::config::{AccessSection, ApiKeyConfig, Backend, JwtConfig};

/// The header an API key travels in (also accepted as `Authorization: Bearer <key>`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The functions a caller may invoke.
#[derive(Debug, Clone)]
enum Allowed {
    All,
    Only(BTreeSet<String>),
}

impl Allowed {
    fn new(functions: &[String]) -> Self {
        if functions.iter().any(|f| f == "*") {
            Allowed::All
        } else {
            Allowed::Only(functions.iter().cloned().collect())
        }
    }

    fn permits(&self, function: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(names) => names.contains(function),
        }
    }
}

/// A caller the gateway knows: a key's holder or a token's subject.
struct Principal {
    id: String,
    allowed: Allowed,
    rate: Option<DefaultDirectRateLimiter>,
}

impl Principal {
    fn new(id: &str, functions: &[String], rate: Option<u32>, burst: Option<u32>) -> Self {
        let rate = rate.and_then(NonZeroU32::new).map(|per_second| {
            let burst = burst.and_then(NonZeroU32::new).unwrap_or(per_second);
            RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
        });
        Self {
            id: id.to_string(),
            allowed: Allowed::new(functions),
            rate,
        }
    }
}

struct ApiKey {
    digest: [u8; 32],
    principal: Principal,
}

/// Tokens: how they are checked, and the subjects allowed.
struct Tokens {
    validation: Validation,
    /// The key set, swapped whole when it is read again.
    keys: ArcSwap<JwkSet>,
    subjects: Vec<Principal>,
}

/// The access policy of a running gateway.
pub struct Access {
    open: bool,
    keys: Vec<ApiKey>,
    tokens: Option<Tokens>,
}

/// Who called, once admitted: for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Access {
    /// From the configuration; `jwks` is the key set already read (see [`read_jwks`]).
    pub fn new(section: &AccessSection, backend: &Backend, jwks: Option<JwkSet>) -> Self {
        let keys = section.keys.iter().map(api_key).collect();
        let tokens = section.jwt.as_ref().map(|jwt| Tokens {
            validation: validation(jwt),
            keys: ArcSwap::from_pointee(jwks.unwrap_or(JwkSet { keys: Vec::new() })),
            subjects: jwt
                .subjects
                .iter()
                .map(|s| Principal::new(&s.subject, &s.functions, s.rate_per_second, s.burst))
                .collect(),
        });
        Self {
            open: section.is_open(backend),
            keys,
            tokens,
        }
    }

    /// Whether callers are served without credentials.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Replaces the token key set (the refresher reads it again every `jwks_refresh_s`).
    pub fn set_jwks(&self, jwks: JwkSet) {
        if let Some(tokens) = &self.tokens {
            tokens.keys.store(Arc::new(jwks));
        }
    }

    /// Whether a request with these headers may invoke `function`; `None` when access is open.
    pub fn check(
        &self,
        headers: &HeaderMap,
        function: &str,
    ) -> Result<Option<Caller>, GatewayError> {
        if self.open {
            return Ok(None);
        }
        let credential = credential(headers).ok_or_else(|| {
            unauthenticated(
                "credentials required: an `x-api-key` header or `Authorization: Bearer <token>`",
            )
        })?;
        let principal = match (self.key_holder(credential), &self.tokens) {
            (Some(principal), _) => principal,
            (None, Some(tokens)) if looks_like_jwt(credential) => tokens.subject(credential)?,
            (None, _) => return Err(unauthenticated("the API key is not valid")),
        };
        if !principal.allowed.permits(function) {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                format!("{:?} may not invoke function {function:?}", principal.id),
            ));
        }
        if let Some(rate) = &principal.rate {
            if let Err(not_until) = rate.check() {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                return Err(GatewayError::new(
                    ErrorKind::RateLimited,
                    format!("{:?} is over its request rate; retry shortly", principal.id),
                )
                .retry_after(wait));
            }
        }
        Ok(Some(Caller(principal.id.clone())))
    }

    /// The holder of `key`, if any. Constant time by construction: the key's digest is compared
    /// with every stored digest, each comparison in constant time, and the loop does not stop
    /// at a match.
    fn key_holder(&self, key: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for stored in &self.keys {
            if bool::from(stored.digest.ct_eq(&digest)) {
                found = Some(&stored.principal);
            }
        }
        found
    }
}

impl Tokens {
    fn subject(&self, token: &str) -> Result<&Principal, GatewayError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthenticated(format!("the token is not valid: {e}")))?;
        let keys = self.keys.load();
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| unauthenticated("the token's signing key is not in the key set"))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| unauthenticated(format!("the token's signing key is unusable: {e}")))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| unauthenticated(format!("the token is not valid: {e}")))?
            .claims;
        let subject = claims
            .sub
            .ok_or_else(|| unauthenticated("the token names no subject (`sub`)"))?;
        self.subjects
            .iter()
            .find(|s| s.id == subject)
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::Forbidden,
                    format!("subject {subject:?} is not allowed any function"),
                )
            })
    }
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: Option<String>,
}

fn api_key(config: &ApiKeyConfig) -> ApiKey {
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        // Validated as 64 hex digits when the configuration was read.
        *byte = u8::from_str_radix(&config.sha256[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    ApiKey {
        digest,
        principal: Principal::new(
            &config.id,
            &config.functions,
            config.rate_per_second,
            config.burst,
        ),
    }
}

fn validation(jwt: &JwtConfig) -> Validation {
    let algorithms: Vec<Algorithm> = jwt
        .algorithms
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms;
    validation.set_issuer(&[&jwt.issuer]);
    validation.set_audience(&[&jwt.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = jwt.leeway_s;
    validation
}

/// The credential a request carries: `x-api-key`, else a bearer token.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get(API_KEY_HEADER) {
        return key.to_str().ok().filter(|k| !k.is_empty());
    }
    let authorization = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|&b| b == b'.').count() == 2
}

fn unauthenticated(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorKind::Unauthenticated, message)
}

/// Reads a JWKS document from a file or a URL.
pub async fn read_jwks(jwt: &JwtConfig) -> anyhow::Result<JwkSet> {
    use anyhow::Context as _;
    let text = match (&jwt.jwks_file, &jwt.jwks_url) {
        (Some(file), _) => tokio::fs::read_to_string(file)
            .await
            .with_context(|| format!("cannot read the key set {}", file.display()))?,
        (None, Some(url)) => reqwest::get(url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("cannot fetch the key set {url}"))?
            .text()
            .await
            .with_context(|| format!("cannot read the key set {url}"))?,
        (None, None) => anyhow::bail!("access.jwt: no key set configured"),
    };
    serde_json::from_str(&text).context("the key set is not a JWKS document")
}

/// A new API key and the digest to configure: 32 random bytes, URL-safe base64.
pub fn generate_key() -> (String, String) {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!(
        "wg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = hex(&Sha256::digest(key.as_bytes()));
    (key, digest)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
