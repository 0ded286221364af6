#!/usr/bin/env python3
"""A real Prometheus server scrapes a running gateway under a little load, with the rules of
deploy/prometheus/rules; its HTTP API must then show warmgate's series with the counts the
load caused, the recording rules' results, every rule healthy, and an answer to every query of
the Grafana dashboard. One function caches, with a real redis-server as its shared tier, so
the cache's series and panels are checked too.

Usage: prometheus_scrape.py WARMGATE_BINARY PROMETHEUS_BINARY
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from harness import (
    REPO,
    CheckFailed,
    Gateway,
    Redis,
    cached_config,
    configured_functions,
    free_port,
    http,
    wait_for,
)

RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = REPO / "deploy" / "grafana" / "warmgate.json"


class Prometheus:
    """`prometheus` with a one-second scrape of `metrics_addr` (file service discovery) and
    warmgate's rule files, on a port of its own, its data in a temporary directory."""

    def __init__(self, binary: str, metrics_addr: str):
        self.dir = Path(tempfile.mkdtemp(prefix="warmgate-prometheus-"))
        (self.dir / "targets.json").write_text(
            json.dumps([{"targets": [metrics_addr], "labels": {"deployment": "deploy-check"}}])
        )
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(path) for path in RULES],
            "scrape_configs": [
                {
                    "job_name": "warmgate",
                    "file_sd_configs": [{"files": [str(self.dir / "targets.json")], "refresh_interval": "1s"}],
                }
            ],
        }
        # JSON is YAML: no YAML library needed.
        (self.dir / "prometheus.yml").write_text(json.dumps(config, indent=1))
        self.addr = f"127.0.0.1:{free_port()}"
        self.log = open(self.dir / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.addr}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for("Prometheus to be ready", lambda: self.ready(), 60)
        except BaseException:
            self.stop()
            raise

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise CheckFailed(
                f"prometheus exited with {self.process.returncode}:\n{(self.dir / 'prometheus.log').read_text()[-3000:]}"
            )
        return http("GET", f"http://{self.addr}/-/ready", timeout=2)[0] == 200

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        status, _, body = http("GET", f"http://{self.addr}/api/v1/{path}?{query}", timeout=10)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise CheckFailed(f"Prometheus API {path} {params} answered {status}: {body[:1000]!r}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def values(self, expr: str, by: str) -> dict[str, float]:
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(expr)}

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard, its variables given values
    a query can run with."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("${function:regex}", ".+")
                .replace("$function", ".+")
                .replace("$job", "warmgate")
            )
            out.append((panel["title"], expr))
    if len(out) < 8:
        raise CheckFailed(f"the dashboard has only {len(out)} queries")
    return out


def main(binary: str, prometheus_binary: str):
    functions = configured_functions()
    directory = tempfile.TemporaryDirectory(prefix="warmgate-config-")
    config, cached = cached_config(Path(directory.name))
    with (
        directory,
        Redis() as redis,
        Gateway(binary, config, env=redis.env) as gateway,
        Prometheus(prometheus_binary, gateway.metrics_addr) as prometheus,
    ):
        wait_for(
            "Prometheus's first scrape of warmgate (up == 1)",
            lambda: prometheus.values('up{job="warmgate"}', "job").get("warmgate") == 1.0,
            60,
        )
        # Before any request, every configured function has its series, at zero.
        at_start = prometheus.values('sum by (function) (warmgate_requests_total{job="warmgate"})', "function")
        for function in functions:
            if at_start.get(function) != 0.0:
                raise CheckFailed(f"{function}: no requests_total series at zero before any request: {at_start}")

        # A little load: each function called a few times, spread over a few scrapes, and a
        # few bodies that are not JSON.
        sent: dict[str, int] = {f: 0 for f in functions}
        cache_results: dict[str, int] = {}
        bad = 0

        def call(function: str, payload: bytes):
            status, headers, body = gateway.invoke(function, payload)
            if status != 200:
                raise CheckFailed(f"invoke {function} answered {status}: {body[:300]!r}")
            sent[function] += 1
            result = {k.lower(): v for k, v in headers.items()}.get("x-warmgate-cache")
            if (result is not None) != (function == cached):
                raise CheckFailed(f"{function} answered x-warmgate-cache: {result}; only {cached} caches")
            if result is not None:
                cache_results[result] = cache_results.get(result, 0) + 1

        for round in range(5):
            for function in functions:
                for _ in range(2):
                    call(function, b'{"text":"warm starts are lovely"}')
            # A new payload each round: a miss, so Redis is read and written every round.
            call(cached, json.dumps({"text": f"round {round}"}).encode())
            status, _, _ = gateway.invoke("sentiment", b"{not json")
            if status != 400:
                raise CheckFailed(f"a body that is not JSON was answered {status}, not 400")
            bad += 1
            time.sleep(0.5)
        print(f"sent {sum(sent.values())} requests and {bad} bodies that are not JSON; {cached} answered {cache_results}")
        if not cache_results.get("hit") or not cache_results.get("miss"):
            raise CheckFailed(f"{cached} should have hits and misses: {cache_results}")

        ok_by_function = 'sum by (function) (warmgate_requests_total{job="warmgate",outcome="ok"})'
        wait_for(
            "Prometheus to have scraped every request sent",
            lambda: prometheus.values(ok_by_function, "function") == {f: float(n) for f, n in sent.items()},
            60,
        )
        got_bad = prometheus.values(
            'sum by (function) (warmgate_requests_total{function="sentiment",outcome="bad_request"})', "function"
        )
        if got_bad.get("sentiment") != bad:
            raise CheckFailed(f"bad_request count {got_bad} != {bad} sent")

        # Recording rules evaluated on what was scraped.
        def configured(expr: str, positive: bool):
            """`expr` by function, once every configured function has a value (above zero)."""
            values = prometheus.values(expr, "function")
            mine = {f: v for f, v in values.items() if f in functions}
            if set(mine) == set(functions) and (not positive or all(v > 0 for v in mine.values())):
                return mine
            return None

        rate = wait_for(
            "the recording rule function:warmgate_requests:rate5m above zero for every function",
            lambda: configured("function:warmgate_requests:rate5m", True),
            60,
        )
        errors = wait_for(
            "function_outcome:warmgate_requests:ratio_rate5m{outcome=bad_request} for sentiment",
            lambda: prometheus.values(
                'function_outcome:warmgate_requests:ratio_rate5m{function="sentiment",outcome="bad_request"}', "function"
            ),
            60,
        )
        if not 0 < errors["sentiment"] < 1:
            raise CheckFailed(f"sentiment's bad_request share is {errors['sentiment']}, not in (0, 1)")
        cold = wait_for(
            "function:warmgate_cold_starts:ratio_rate5m for every function",
            lambda: configured("function:warmgate_cold_starts:ratio_rate5m", False),
            60,
        )
        print(f"recording rules: requests/s {rate}; cold-start share {cold}; sentiment bad_request share {errors}")

        # The cache's series: what the answers' x-warmgate-cache said, the Redis tier up and
        # written to, the hit ratio recorded.
        results = f'sum by (result) (warmgate_cache_requests_total{{job="warmgate",function="{cached}"}})'
        wait_for(
            f"warmgate_cache_requests_total of {cached} to match x-warmgate-cache {cache_results}",
            lambda: {r: v for r, v in prometheus.values(results, "result").items() if v}
            == {r: float(n) for r, n in cache_results.items()},
            30,
        )
        up = prometheus.query('warmgate_cache_redis_up{job="warmgate"}')
        if [float(r["value"][1]) for r in up] != [1.0]:
            raise CheckFailed(f"warmgate_cache_redis_up is {up}, not 1 with redis-server running")
        stored = prometheus.values(f'warmgate_cache_stores_total{{job="warmgate",function="{cached}"}}', "tier")
        if not stored.get("redis"):
            raise CheckFailed(f"nothing stored in Redis: {stored}")
        ratio = wait_for(
            f"function:warmgate_cache_hits:ratio_rate5m for {cached}",
            lambda: prometheus.values(f'function:warmgate_cache_hits:ratio_rate5m{{function="{cached}"}}', "function"),
            60,
        )
        if not 0 < ratio[cached] < 1:
            raise CheckFailed(f"{cached}'s hit ratio is {ratio[cached]}, not in (0, 1)")
        print(f"cache: {cached}'s hit ratio {ratio[cached]:.2f}; stores {stored}; Redis up")

        # Every rule loaded, evaluated, healthy.
        def rules_healthy():
            groups = prometheus.api("rules")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            evaluated = [rule for rule in rules if rule.get("lastEvaluation", "").startswith("0001") is False]
            unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
            if unhealthy:
                raise CheckFailed(f"rules not healthy: {unhealthy}")
            return len(rules) if len(evaluated) == len(rules) and len(rules) >= 20 else None

        count = wait_for("every rule evaluated and healthy", rules_healthy, 30)
        print(f"{count} rules loaded, evaluated and healthy")

        # Every query of the dashboard runs; those over requests have data.
        empty = []
        for title, expr in dashboard_queries():
            result = prometheus.query(expr)
            if not result:
                empty.append(title)
        allowed_empty = {
            "Spillover to on-demand",
            "SnapStart restore p90",
            "Provisioned concurrency: recommended, applied, lease",
        }
        unexpected = sorted(set(empty) - allowed_empty)
        if unexpected:
            raise CheckFailed(f"dashboard panels with no data after the load: {unexpected}")
        print(f"every dashboard query ran; empty, as they may be without provisioned concurrency, its planner or SnapStart: {sorted(set(empty))}")

        # The series a user looks for first are all there.
        for name in (
            "warmgate_build_info",
            "warmgate_request_duration_seconds_bucket",
            "warmgate_added_latency_seconds_bucket",
            "warmgate_pool_warm_idle_environments",
            "warmgate_pings_total",
            "warmgate_keep_alive_pings_total",
            "warmgate_rounds_checked_total",
            "warmgate_ping_billed_byte_seconds_total",
            "warmgate_function_ready",
        ):
            if not prometheus.query(f'count({name}{{job="warmgate"}})'):
                raise CheckFailed(f"{name} is not in Prometheus")
        ready = prometheus.values('warmgate_function_ready{job="warmgate"}', "function")
        if ready != {f: 1.0 for f in functions}:
            raise CheckFailed(f"warmgate_function_ready is {ready}")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
