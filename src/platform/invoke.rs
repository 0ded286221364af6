//! The invoke path: a request admitted (or throttled), placed on a warm, provisioned or new
//! environment, and run to its completion, with its billing.

use super::*;

impl Platform {
    /// How long `request` holds its environment if it is a ping: the hold its client context
    /// asks for under [`PING_HOLD_KEY`] (so that concurrent pings reach distinct
    /// environments), else the handler's own ping time; `None` for a real request.
    fn ping_hold(&self, f: usize, request: &Request) -> Option<Duration> {
        let custom = request.client_context.and_then(|c| c.get("custom"));
        let by_context = custom
            .and_then(|c| c.get(&self.settings.ping.client_context_key))
            .is_some();
        let by_payload = request.payload.trim_ascii() == self.functions[f].ping_payload.as_slice();
        if !(by_context || by_payload) {
            return None;
        }
        let asked = custom
            .filter(|_| self.settings.ping.honour_hold)
            .and_then(|c| c.get(PING_HOLD_KEY))
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
            .filter(|ms| ms.is_finite() && *ms >= 0.0);
        Some(ms(asked.unwrap_or(self.settings.ping.hold_ms)))
    }

    /// Invokes a function at `now`.
    pub fn invoke(&mut self, now: Time, request: &Request) -> Result<Invocation, Rejection> {
        self.admit(now, request, None)
    }

    /// Invokes a function at `now` for a trace replay: its handler runs for `duration` rather
    /// than a draw from the function's `duration_ms` (traces give each invocation's duration,
    /// or a richer distribution than [`dist::Dist`]), and its answer is left empty, since a
    /// replay reads only what happened and when (building the stand-in answer was a third of
    /// a replay's time). A ping still holds its environment for the ping's hold time, and the
    /// timeout still applies. Everything else is as [`Platform::invoke`].
    pub fn invoke_replayed(
        &mut self,
        now: Time,
        request: &Request,
        duration: Duration,
    ) -> Result<Invocation, Rejection> {
        self.admit(now, request, Some(duration))
    }

    fn admit(
        &mut self,
        now: Time,
        request: &Request,
        replayed: Option<Duration>,
    ) -> Result<Invocation, Rejection> {
        let now = self.advance(now);
        let Some(f) = self.function_index(request.function) else {
            self.not_found += 1;
            return Err(Rejection::NotFound {
                message: self.not_found_message(request.function, request.qualifier),
            });
        };
        let Some(v) = self.resolve(f, request.qualifier) else {
            self.not_found += 1;
            return Err(Rejection::NotFound {
                message: self.not_found_message(request.function, request.qualifier),
            });
        };
        let ping = self.ping_hold(f, request);

        // Provisioned concurrency first: it serves invocations of its own qualifier.
        let mut spillover = false;
        let mut taken = None;
        if let Some(c) = request
            .qualifier
            .and_then(|q| self.functions[f].provisioned_index(q))
        {
            let config = &mut self.functions[f].provisioned[c];
            if config.version == v {
                match config.idle.pop() {
                    Some(id) => {
                        config.busy += 1;
                        taken = Some((id, Start::Provisioned));
                    }
                    None => spillover = config.members > 0 || config.requested > 0,
                }
            }
        }
        let (id, start) = match taken {
            Some(t) => t,
            None => match self.take_on_demand(now, f, v) {
                Ok(t) => t,
                Err(reason) => {
                    *self.functions[f].versions[v]
                        .stats
                        .throttles
                        .entry(reason)
                        .or_default() += 1;
                    return Err(Rejection::Throttled { reason });
                }
            },
        };
        Ok(self.run(
            now,
            f,
            v,
            id,
            start,
            ping,
            spillover,
            request.payload,
            replayed,
        ))
    }

    /// Finds or starts an on-demand environment of version `v`, within the limits.
    fn take_on_demand(
        &mut self,
        now: Time,
        f: usize,
        v: usize,
    ) -> Result<(EnvId, Start), ThrottleReason> {
        let function = &self.functions[f];
        match function.spec.reserved_concurrency {
            Some(reserved) if function.usage() >= reserved => {
                return Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            }
            None if self.unreserved_usage >= self.unreserved_limit => {
                return Err(ThrottleReason::ConcurrentInvocationLimitExceeded)
            }
            _ => {}
        }
        // Most recently used first: an assumption (AWS documents no order), and the one that
        // lets the rest of a pool age out, as measurements of idle reclaim suggest.
        if let Some(id) = self.functions[f].versions[v].idle.pop() {
            let env = self.envs.get_mut(&id).expect("idle environments are live");
            let gb = stats::gigabytes(self.functions[f].spec.memory_mb);
            self.functions[f].versions[v].stats.idle_gb_s +=
                now.saturating_sub(env.busy_until).as_secs_f64() * gb;
            self.change_on_demand(f, 1);
            return Ok((id, Start::Warm));
        }
        let starts = &mut self.functions[f].recent_env_starts;
        while starts.front().is_some_and(|&t| t + SCALING_WINDOW <= now) {
            starts.pop_front();
        }
        if starts.len() >= self.settings.scaling_per_10s as usize {
            return Err(ThrottleReason::FunctionInvocationRateLimitExceeded);
        }
        starts.push_back(now);
        let lifetime = self.settings.max_lifetime_s.sample(&mut self.rng);
        let id = self.new_env(now, f, v, None);
        self.envs.get_mut(&id).expect("just created").expires =
            now + Duration::from_secs_f64(lifetime);
        self.functions[f].versions[v].stats.environments_created += 1;
        self.change_on_demand(f, 1);
        Ok((id, Start::Cold))
    }

    pub(super) fn new_env(&mut self, now: Time, f: usize, v: usize, pool: Option<usize>) -> EnvId {
        let id = self.next_env;
        self.next_env += 1;
        self.envs.insert(
            id,
            Env {
                function: f,
                version: v,
                pool,
                created: now,
                pooled_since: now,
                ready_at: now,
                busy: false,
                busy_until: now,
                idle_ttl: Duration::ZERO,
                expires: Time::MAX,
                generation: 0,
                discard: false,
            },
        );
        id
    }

    /// Runs the handler on environment `id` from `now`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        now: Time,
        f: usize,
        v: usize,
        id: EnvId,
        start: Start,
        // How long it holds its environment, if it is a ping.
        ping_hold: Option<Duration>,
        spillover: bool,
        payload: &[u8],
        // The duration a replay gives; a replay reads no answer.
        replayed: Option<Duration>,
    ) -> Invocation {
        let settings = &self.settings;
        let function = &self.functions[f];
        let spec = &function.spec;
        let memory_mb = spec.memory_mb;

        // A new environment of a SnapStart version resumes from its snapshot: a restore
        // rather than init ("Improving startup performance with Lambda SnapStart").
        let restores = start == Start::Cold && spec.restores(&function.versions[v].name);
        let init = (start == Start::Cold && !restores).then(|| {
            let drawn = ms(spec.init_ms.sample(&mut self.rng));
            let cap = Duration::from_secs_f64(settings.on_demand_init_cap_s);
            // Past the cap, Lambda abandons init and runs it again inside the invoke.
            if drawn > cap {
                cap + drawn
            } else {
                drawn
            }
        });
        let restore = restores.then(|| ms(spec.restore_ms.sample(&mut self.rng)));
        let timeout = Duration::from_secs_f64(spec.timeout_s);
        let ping = ping_hold.is_some();
        let mut duration = if let Some(hold) = ping_hold {
            hold
        } else if let Some(d) = replayed {
            d
        } else {
            ms(spec.duration_ms.sample(&mut self.rng))
        };
        let idle_ttl = Duration::from_secs_f64(settings.idle_reclaim_s.sample(&mut self.rng));
        let timed_out = duration > timeout;
        let failed = !ping && !timed_out && self.rng.random::<f64>() < spec.error_rate;
        let request_id = uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string();

        let version = &function.versions[v];
        let (payload, function_error) = if timed_out {
            duration = timeout;
            let message = format!("Task timed out after {:.2} seconds", spec.timeout_s);
            (
                handler::error_body("Sandbox.Timedout", &message),
                Some("Unhandled"),
            )
        } else if failed {
            (
                handler::error_body("RuntimeError", "emulated handler failure"),
                Some("Unhandled"),
            )
        } else if ping {
            (handler::ping_response(id), None)
        } else if replayed.is_some() {
            (Vec::new(), None)
        } else {
            (
                handler::response(&spec.name, &version.code_sha256, payload),
                None,
            )
        };
        // What the caller waits before the handler: init or restore, never both.
        let init_time = init.or(restore).unwrap_or_default();
        let billed = Duration::from_millis(ceil_ms(duration) + init.map_or(0, ceil_ms));
        // The ledger counts the billed restore too, though the REPORT line shows it apart.
        let billed_total = billed.as_millis() as u64 + restore.map_or(0, ceil_ms);
        let max_memory_used_mb = spec
            .max_memory_used_mb
            .unwrap_or(memory_mb / 2)
            .min(memory_mb);
        let executed_version = version.name.clone();
        let gb = stats::gigabytes(memory_mb);

        let stats = &mut self.functions[f].versions[v].stats;
        match start {
            Start::Warm => stats.warm_starts += 1,
            Start::Cold => stats.cold_starts += 1,
            Start::Provisioned => stats.provisioned_starts += 1,
        }
        stats.restores += u64::from(restore.is_some());
        stats.spillovers += u64::from(spillover);
        if ping {
            stats.pings += 1;
            stats.ping_billed_ms += billed_total;
        }
        stats.function_errors += u64::from(function_error.is_some());
        stats.timeouts += u64::from(timed_out);
        stats.billed_ms += billed_total;
        stats.init_gb_s += init_time.as_secs_f64() * gb;
        if start == Start::Provisioned {
            stats.provisioned_busy_gb_s += duration.as_secs_f64() * gb;
        } else {
            stats.busy_gb_s += duration.as_secs_f64() * gb;
        }

        let completes_at = now + init_time + duration;
        let env = self.envs.get_mut(&id).expect("taken environment is live");
        env.busy = true;
        env.generation += 1;
        env.ready_at = env.ready_at.max(now + init_time);
        env.busy_until = completes_at;
        env.idle_ttl = idle_ttl;
        // Lambda resets an environment whose invocation timed out.
        env.discard |= timed_out;
        self.schedule(completes_at, Event::Complete(id));

        Invocation {
            request_id,
            executed_version,
            environment: id,
            start,
            init,
            restore,
            duration,
            billed,
            memory_mb,
            max_memory_used_mb,
            payload,
            function_error,
            ping,
            spillover,
            started_at: now,
            completes_at,
        }
    }
}
