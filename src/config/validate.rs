//! Checks of a loaded configuration: every error names the key and what is wrong with it.

use super::*;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.history.path {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.starts_with("warmgate-history") && name.ends_with(".csv")) {
                return invalid(
                    "history.path",
                    format!(
                        "{}: name the file warmgate-history*.csv, so that `warmgate simulate \
                         --trace` knows it",
                        path.display()
                    ),
                );
            }
        }
        if self.gateway.max_in_flight == 0 {
            return invalid("gateway.max_in_flight", "must be at least 1");
        }
        if self.gateway.refresh_interval_s == 0 {
            return invalid("gateway.refresh_interval_s", "must be at least 1");
        }
        if self.gateway.max_connections == 0 {
            return invalid("gateway.max_connections", "must be at least 1");
        }
        for (key, ms) in [
            (
                "gateway.header_read_timeout_ms",
                self.gateway.header_read_timeout_ms,
            ),
            (
                "gateway.body_read_timeout_ms",
                self.gateway.body_read_timeout_ms,
            ),
            ("gateway.idle_timeout_ms", self.gateway.idle_timeout_ms),
        ] {
            if ms == 0 {
                return invalid(key, "must be at least 1 ms");
            }
        }
        match &self.backend {
            Backend::Endpoint { url, .. }
                if !(url.starts_with("http://") || url.starts_with("https://")) =>
            {
                return invalid(
                    "backend.url",
                    format!("must be an http(s) URL, got {url:?}"),
                );
            }
            Backend::Endpoint { time_scale, .. } | Backend::Embedded { time_scale, .. }
                if !(time_scale.is_finite() && *time_scale > 0.0) =>
            {
                return invalid("backend.time_scale", "must be a positive number");
            }
            _ => {}
        }
        self.validate_access()?;
        if let Err(e) = crate::policy::registry::live_policy(&self.warmer.policy) {
            return invalid("warmer.policy", e);
        }
        if let Some(budget) = self.provisioning.daily_budget_usd {
            if !(budget.is_finite() && budget >= 0.0) {
                return invalid(
                    "provisioning.daily_budget_usd",
                    "must be a non-negative number",
                );
            }
        }
        if self.provisioning.lease_ttl_ms == 0 {
            return invalid("provisioning.lease_ttl_ms", "must be at least 1");
        }
        if let Some((field, message)) = self.cache.redis.as_ref().and_then(|r| r.problem()) {
            return invalid(format!("cache.redis.{field}"), message);
        }
        if self.warmer.max_pings_in_flight == 0 {
            return invalid("warmer.max_pings_in_flight", "must be at least 1");
        }
        if !(60..=3600).contains(&self.warmer.idle_lifetime_s) {
            return invalid(
                "warmer.idle_lifetime_s",
                format!(
                    "must be between 60 and 3600 seconds, got {}",
                    self.warmer.idle_lifetime_s
                ),
            );
        }
        // The warmer plans a refresh `refresh_margin_ms` before an environment's idle
        // lifetime ends; a round delayed past it finds the environment reclaimed.
        let margin = self.warmer.refresh_margin_ms;
        let half_lifetime = self.warmer.idle_lifetime_s * 500;
        if margin == 0 || margin >= half_lifetime {
            return invalid(
                "warmer.refresh_margin_ms",
                format!(
                    "must be at least 1 and below half the idle lifetime ({half_lifetime} ms \
                     with idle_lifetime_s = {}), got {margin}",
                    self.warmer.idle_lifetime_s
                ),
            );
        }
        if self.warmer.jitter_ms >= margin {
            return invalid(
                "warmer.jitter_ms",
                format!(
                    "must be below refresh_margin_ms, {margin} (rounds are planned that long \
                     before an idle environment may be reclaimed; a later round finds it gone)"
                ),
            );
        }
        if self.warmer.max_round_hold_ms > MAX_ROUND_HOLD_MS {
            return invalid(
                "warmer.max_round_hold_ms",
                format!("must be at most {MAX_ROUND_HOLD_MS} (a round's pings are billed for it)"),
            );
        }
        if self.warmer.round_hold_ms > self.warmer.max_round_hold_ms {
            return invalid(
                "warmer.round_hold_ms",
                format!(
                    "must be at most warmer.max_round_hold_ms ({})",
                    self.warmer.max_round_hold_ms
                ),
            );
        }
        // A keeper that stops without leaving (a crash) leaves its functions unpinged for up
        // to a TTL and a beat; beyond a minute that reaches the idle lifetimes measured.
        if !(300..=60_000).contains(&self.warmer.replica_ttl_ms) {
            return invalid(
                "warmer.replica_ttl_ms",
                format!(
                    "must be between 300 and 60000 ms (a replica that stops without leaving leaves its functions unpinged this long), got {}",
                    self.warmer.replica_ttl_ms
                ),
            );
        }
        if self.functions.is_empty() {
            return invalid(
                "function",
                "declare at least one function clients may invoke",
            );
        }
        let mut names = BTreeSet::new();
        for (i, f) in self.functions.iter().enumerate() {
            let key = |field: &str| format!("function[{i}].{field}");
            if !valid_function_name(&f.name) {
                return invalid(
                    key("name"),
                    format!("{:?} must be 1 to 64 letters, digits, '-' or '_'", f.name),
                );
            }
            if !names.insert(f.name.as_str()) {
                return invalid(key("name"), format!("{:?} is declared twice", f.name));
            }
            if !valid_function_name(f.lambda_name()) {
                return invalid(
                    key("lambda_name"),
                    "must be a function name, not an ARN (clients never choose ARNs)",
                );
            }
            if f.targets.is_empty() {
                return invalid(key("targets"), "needs at least one alias or version");
            }
            let mut seen = BTreeSet::new();
            for t in &f.targets {
                if t.is_empty() || t.contains(':') || t.contains('/') {
                    return invalid(key("targets"), format!("{t:?} is not an alias or version"));
                }
                if !seen.insert(t) {
                    return invalid(key("targets"), format!("{t:?} is listed twice"));
                }
            }
            if f.timeout_ms == 0 || f.timeout_ms > 900_000 {
                return invalid(
                    key("timeout_ms"),
                    "must be within 1..=900000 (Lambda's 15 min)",
                );
            }
            // The default bound is cut to a shorter timeout (at start); one set longer is an error.
            if f.wait.max_wait_ms > f.timeout_ms
                && f.wait.max_wait_ms != crate::policy::router::WaitPolicy::default().max_wait_ms
            {
                return invalid(
                    key("wait.max_wait_ms"),
                    "must not exceed the function's timeout_ms",
                );
            }
            if !(f.wait.wait_below_cold_share > 0.0 && f.wait.wait_below_cold_share <= 1.0) {
                return invalid(key("wait.wait_below_cold_share"), "must be within (0, 1]");
            }
            if f.wait.waiters_per_burst_ping == 0 {
                return invalid(key("wait.waiters_per_burst_ping"), "must be at least 1");
            }
            if !(f.ping_budget.gb_s_per_day.is_finite() && f.ping_budget.gb_s_per_day >= 0.0) {
                return invalid(
                    key("ping_budget.gb_s_per_day"),
                    "must be a non-negative number",
                );
            }
            if serde_json::from_str::<serde::de::IgnoredAny>(&f.ping_payload).is_err() {
                return invalid(key("ping_payload"), "must be JSON");
            }
            if f.max_payload_bytes == 0 || f.max_payload_bytes > LAMBDA_PAYLOAD_LIMIT {
                return invalid(
                    key("max_payload_bytes"),
                    format!("must be within 1..={LAMBDA_PAYLOAD_LIMIT} (Lambda's 6 MB)"),
                );
            }
            if f.provisioning.min > f.provisioning.max {
                return invalid(key("provisioning.min"), "must not exceed provisioning.max");
            }
            if let Some((field, message)) = f.cache.as_ref().and_then(|c| c.problem()) {
                return invalid(key(&format!("cache.{field}")), message);
            }
        }
        Ok(())
    }

    fn validate_access(&self) -> Result<(), ConfigError> {
        let access = &self.access;
        if !access.is_open(&self.backend) && access.keys.is_empty() && access.jwt.is_none() {
            return invalid(
                "access",
                "no credentials configured, so no caller could be served: add [[access.keys]] \
                 (see `warmgate keygen`) or [access.jwt], or set access.open = true to serve \
                 without authentication",
            );
        }
        let known = |key: &str, functions: &[String]| -> Result<(), ConfigError> {
            for name in functions {
                if name != "*" && self.function(name).is_none() {
                    return invalid(key, format!("{name:?} is not a configured function"));
                }
            }
            Ok(())
        };
        let rate = |key: &str, rate: Option<u32>, burst: Option<u32>| match (rate, burst) {
            (Some(0), _) | (_, Some(0)) => {
                invalid(key, "rate_per_second and burst must be at least 1")
            }
            (None, Some(_)) => invalid(key, "burst needs rate_per_second"),
            _ => Ok(()),
        };
        let mut ids = BTreeSet::new();
        for (i, k) in access.keys.iter().enumerate() {
            let key = |field: &str| format!("access.keys[{i}].{field}");
            if !ids.insert(k.id.as_str()) {
                return invalid(key("id"), format!("{:?} is declared twice", k.id));
            }
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(
                    key("sha256"),
                    "must be 64 hex digits (the SHA-256 of the key)",
                );
            }
            known(&key("functions"), &k.functions)?;
            rate(&key("rate_per_second"), k.rate_per_second, k.burst)?;
        }
        if let Some(jwt) = &access.jwt {
            if jwt.jwks_file.is_some() == jwt.jwks_url.is_some() {
                return invalid("access.jwt", "set exactly one of jwks_file and jwks_url");
            }
            if jwt.algorithms.is_empty() {
                return invalid("access.jwt.algorithms", "name at least one algorithm");
            }
            for a in &jwt.algorithms {
                if a.parse::<jsonwebtoken::Algorithm>().is_err() {
                    return invalid(
                        "access.jwt.algorithms",
                        format!("{a:?} is not a JWS algorithm (RS256, ES256, EdDSA, ...)"),
                    );
                }
                if a.starts_with("HS") {
                    return invalid(
                        "access.jwt.algorithms",
                        "shared-secret algorithms (HS*) are not accepted: use a key set",
                    );
                }
            }
            for (i, s) in jwt.subjects.iter().enumerate() {
                known(&format!("access.jwt.subjects[{i}].functions"), &s.functions)?;
                rate(
                    &format!("access.jwt.subjects[{i}].rate_per_second"),
                    s.rate_per_second,
                    s.burst,
                )?;
            }
        }
        Ok(())
    }
}
