#!/usr/bin/env python3
"""`promtool check metrics` on a live /metrics, before and after traffic; and every configured
function's series there from the start, at zero. The gateway caches one function with a
real redis-server as its shared tier, so the cache's series are linted too.

Usage: check_metrics.py WARMGATE_BINARY PROMTOOL
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import CheckFailed, Gateway, Redis, cached_config, configured_functions, get_text

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = SAMPLE.match(line)
        if not match:
            raise CheckFailed(f"unparsable exposition line: {line!r}")
        out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def value(metrics: dict[str, float], name: str, **labels) -> float | None:
    """The sum of `name`'s series carrying every given label, None when there is none."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    found = [v for k, v in metrics.items() if k.startswith(name + "{") and all(w in k for w in wanted)]
    return sum(found) if found else None


def promtool_check(promtool: str, text: str, when: str):
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise CheckFailed(
            f"promtool check metrics failed on /metrics {when}:\n{result.stdout}{result.stderr}"
        )
    print(f"promtool check metrics: clean {when} ({len(text.splitlines())} lines)")


def main(binary: str, promtool: str):
    functions = configured_functions()
    directory = tempfile.TemporaryDirectory(prefix="warmgate-config-")
    config, cached = cached_config(Path(directory.name))
    with directory, Redis() as redis, Gateway(binary, config, env=redis.env) as gateway:
        before = get_text(gateway.metrics_url())
        promtool_check(promtool, before, "before any request")
        metrics = samples(before)
        for function, targets in functions.items():
            for target in targets:
                for name in (
                    "warmgate_requests_total",
                    "warmgate_cold_starts_total",
                    "warmgate_request_duration_seconds_count",
                    "warmgate_ping_billed_byte_seconds_total",
                ):
                    if value(metrics, name, function=function, target=target) is None:
                        raise CheckFailed(f"{name} has no series for {function}/{target} at start")
                ok = value(metrics, "warmgate_requests_total", function=function, target=target, outcome="ok")
                if ok != 0:
                    raise CheckFailed(f"{function}/{target}: requests_total{{outcome=ok}} is {ok} before any request")
        for name in ("warmgate_cache_requests_total", "warmgate_cache_saved_dollars"):
            if value(metrics, name, function=cached) != 0:
                raise CheckFailed(f"{name} of {cached} is not at zero before any request")
        if metrics.get("warmgate_cache_redis_up") != 1:
            raise CheckFailed("warmgate_cache_redis_up is not 1 with redis-server running")
        if value(metrics, "warmgate_build_info") != 1:
            raise CheckFailed("warmgate_build_info is not 1")

        sent = {}
        for function in functions:
            for _ in range(3):
                status, _, body = gateway.invoke(function, b'{"text":"hello"}')
                if status != 200:
                    raise CheckFailed(f"invoke {function} answered {status}: {body[:300]!r}")
                sent[function] = sent.get(function, 0) + 1
        first = next(iter(functions))
        if gateway.invoke(first, b"not json")[0] != 400:
            raise CheckFailed("a body that is not JSON was not answered 400")
        if gateway.invoke("no-such-function", b"{}")[0] != 404:
            raise CheckFailed("an unknown function was not answered 404")

        after = get_text(gateway.metrics_url())
        promtool_check(promtool, after, "after traffic")
        metrics = samples(after)
        for function, count in sent.items():
            ok = value(metrics, "warmgate_requests_total", function=function, outcome="ok")
            if ok != count:
                raise CheckFailed(f"{function}: requests_total{{outcome=ok}} is {ok}, sent {count}")
        bad = value(metrics, "warmgate_requests_total", function=first, outcome="bad_request")
        if bad != 1:
            raise CheckFailed(f"{first}: requests_total{{outcome=bad_request}} is {bad}, sent 1")
        print(f"series at zero from the start for {sorted(functions)}; counts match the {sum(sent.values())} requests sent")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
