"""The HTTP side of the service: `/metrics` for Prometheus, `/healthz` (the process answers) and
`/readyz` (the database answers and the read model is caught up within the allowed lag)."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Timeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from app.platform import Platform
from projections.metrics import KpiCollector, projection_lag

log = logging.getLogger("recovery.http")


class MetricsServer:
    """Serves in daemon threads; `stop()` closes the socket. Port 0 picks a free one (`.port`)."""

    def __init__(self, platform: Platform, host: str = "127.0.0.1", port: int = 9477,
                 registry: CollectorRegistry | None = None, max_lag_seconds: float | None = None,
                 ready_timeout_seconds: float | None = None):
        self.platform = platform
        self.registry = registry or CollectorRegistry()
        self.registry.register(KpiCollector(platform.app, platform.view, platform.policy))
        settings = platform.settings
        self.max_lag_seconds = (max_lag_seconds if max_lag_seconds is not None
                                else settings.ready_max_lag_seconds)
        self.ready_timeout = (ready_timeout_seconds if ready_timeout_seconds is not None
                              else settings.ready_timeout_seconds)
        self.scrape_timeout = settings.scrape_timeout_seconds
        # The store's client retries a lost database for minutes; a probe must answer in seconds,
        # and scrapes of a slow database must not pile up threads and connections.
        self.probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
        self.scrapes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scrape")
        try:
            self.httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as e:
            raise ValueError(f"cannot serve /metrics on {host}:{port}: {e.strerror or e}") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        log.info(json.dumps({"event": "metrics_listening", "port": self.port}))
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.probes.shutdown(wait=False, cancel_futures=True)
        self.scrapes.shutdown(wait=False, cancel_futures=True)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        try:
            lag = self.probes.submit(projection_lag, self.platform.app, self.platform.view).result(self.ready_timeout)
        except Timeout:
            return False, {"ready": False, "database": f"unreachable: no answer within {self.ready_timeout:g} s"}
        except Exception as e:  # noqa: BLE001 - any failure to read the store means not ready
            return False, {"ready": False, "database": f"unreachable: {type(e).__name__}: {e}".strip()}
        ready = lag.seconds <= self.max_lag_seconds
        return ready, {"ready": ready, "database": "ok", "projection_lag_events": lag.events,
                       "projection_lag_seconds": round(lag.seconds, 3), "max_lag_seconds": self.max_lag_seconds}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    try:
                        body = server.scrapes.submit(encoder, server.registry).result(server.scrape_timeout)
                    except Timeout:
                        self._send(503, "text/plain; charset=utf-8",
                                   f"scrape timed out after {server.scrape_timeout:g} s\n".encode())
                        return
                    except Exception as e:  # noqa: BLE001 - a failed scrape is a 500, not a dead server
                        log.warning(json.dumps({"event": "scrape_failed", "error": str(e)[:300]}))
                        self._send(500, "text/plain; charset=utf-8", f"scrape failed: {e}\n".encode())
                        return
                    self._send(200, content_type, body)
                elif path == "/healthz":
                    self._send(200, "text/plain; charset=utf-8", b"ok\n")
                elif path == "/readyz":
                    ready, detail = server.readiness()
                    self._send(200 if ready else 503, "application/json", json.dumps(detail).encode() + b"\n")
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
                log.debug(format, *args)

        return Handler
