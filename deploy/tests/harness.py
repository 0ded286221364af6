"""What the deploy checks share: a warmgate gateway started as a process, and HTTP helpers.

Only the standard library: CI has Python 3.11 and nothing else installed for these checks.
Every wait is bounded, and a failure raises `CheckFailed` naming what was expected.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class CheckFailed(Exception):
    """A check's expectation that did not hold."""


def http(method: str, url: str, body: bytes | None = None, timeout: float = 60.0):
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_text(url: str, timeout: float = 10.0) -> str:
    status, _, body = http("GET", url, timeout=timeout)
    if status != 200:
        raise CheckFailed(f"GET {url} answered {status}: {body[:500]!r}")
    return body.decode()


def wait_for(what: str, probe, limit_s: float, every_s: float = 0.25):
    """Calls `probe` until it returns a true value (returned), or fails after `limit_s`."""
    deadline = time.monotonic() + limit_s
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (OSError, CheckFailed) as error:
            last = error
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {limit_s:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(every_s)


class Gateway:
    """`warmgate serve` with the local configuration (embedded emulator), on ports the OS
    chooses on 127.0.0.1; read from its ready line."""

    READY = re.compile(r"curl .* http://(127\.0\.0\.1:\d+)/v1/functions/")
    METRICS = re.compile(r"^Metrics: http://(127\.0\.0\.1:\d+)/metrics")

    def __init__(self, binary: str, config: Path = REPO / "config" / "warmgate.toml", env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="warmgate-", suffix=".log", delete=False)
        environment = dict(os.environ)
        environment.update(
            {
                "WARMGATE_GATEWAY__LISTEN": "127.0.0.1:0",
                "WARMGATE_GATEWAY__METRICS_LISTEN": "127.0.0.1:0",
                "RUST_LOG": "warn",
            }
        )
        environment.update(env or {})
        self.process = subprocess.Popen(
            [binary, "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=environment,
            text=True,
        )
        self.addr = None
        self.metrics_addr = None
        self._lines: list[str] = []
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        try:
            wait_for("warmgate's ready line", lambda: self.addr and self.metrics_addr, 90)
            wait_for("/readyz to answer 200", lambda: http("GET", self.url("/readyz"))[0] == 200, 60)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def _read(self):
        for line in self.process.stdout:
            self._lines.append(line)
            if match := self.READY.search(line):
                self.addr = match.group(1)
            if match := self.METRICS.search(line):
                self.metrics_addr = match.group(1)
        if self.addr is None:
            self.addr = ""  # ended before its ready line: let wait_for's probe see it

    def url(self, path: str) -> str:
        if self.process.poll() is not None:
            raise CheckFailed(f"warmgate exited with {self.process.returncode}; log in {self.log.name}")
        return f"http://{self.addr}{path}"

    def metrics_url(self) -> str:
        return f"http://{self.metrics_addr}/metrics"

    def invoke(self, function: str, payload: bytes) -> tuple[int, dict, bytes]:
        return http("POST", self.url(f"/v1/functions/{function}/invoke"), payload)

    def stop(self) -> int:
        """SIGTERM, as ECS stops a task; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise CheckFailed("warmgate did not exit within 60 s of SIGTERM")
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None and code != 0:
            raise CheckFailed(f"warmgate exited with {code} after SIGTERM; log in {self.log.name}")


def configured_functions(config: Path = REPO / "config" / "warmgate.toml") -> dict[str, list[str]]:
    """Each configured function's targets, read from the TOML file."""
    import tomllib

    data = tomllib.loads(config.read_text())
    return {f["name"]: f.get("targets", ["$LATEST"]) for f in data["function"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on a loopback port of its own, without persistence, asking for a password:
    the cache's shared tier given as the stack gives it, URL and password apart (`env`)."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise CheckFailed("redis-server not found (Debian: apt-get install redis-server)")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--requirepass", self.password],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for("redis-server to answer PING", self._pong, 30)
        except BaseException:
            self.stop()
            raise
        self.env = {
            "WARMGATE_CACHE__REDIS__URL": f"redis://127.0.0.1:{self.port}",
            "WARMGATE_CACHE__REDIS__PASSWORD": self.password,
        }

    def _pong(self) -> bool:
        if self.process.poll() is not None:
            raise CheckFailed(f"redis-server exited with {self.process.returncode}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
            connection.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
            return connection.recv(64).startswith(b"+OK\r\n+PONG")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def cached_config(directory: Path) -> tuple[Path, str]:
    """config/warmgate.toml with one function's answers cached (so the cache's series exist,
    and its dashboard panels have data): the one it caches, or else its last function;
    written in `directory` beside a copy of the emulator's configuration it names; and that
    function's name."""
    import tomllib

    text = (REPO / "config" / "warmgate.toml").read_text()
    if not any("cache" in f for f in tomllib.loads(text)["function"]):
        # A table after the last [[function]] belongs to that function.
        text += "\n[function.cache]\nttl_s = 600\n"
    config = directory / "warmgate.toml"
    config.write_text(text)
    shutil.copy(REPO / "config" / "emulator.toml", directory / "emulator.toml")
    cached = [f["name"] for f in tomllib.loads(text)["function"] if "cache" in f]
    if len(cached) != 1:
        raise CheckFailed(f"expected one cached function in {config}, found {cached}")
    return config, cached[0]


def dumps(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True)[:2000]
