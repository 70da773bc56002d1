"""A real Prometheus for tests: Debian's `prometheus` package (installed here when missing), run on
a free loopback port with a generated config, queried through its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app import binaries
from app.live import scrape_config


def ensure_installed() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installing Debian's package first when missing."""
    try:
        return binaries.prometheus()
    except binaries.CannotStart as e:
        pytest.fail(str(e))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return data["result"]

    def wait_for(self, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = self.query(expr)
            except OSError:
                found = []
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never returned {expr!r}")


@contextmanager
def prometheus(targets: list[str], rule_files: list[Path] = ()) -> Iterator[Prometheus]:
    binary, _ = ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="recovery-prometheus-"))
    rules = [str(p.resolve()) for p in rule_files]
    config = scrape_config(targets, rules, "1s")
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = (workdir / "log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Prometheus did not start:\n" + (workdir / "log").read_text()[-3000:])
            time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
