"""A PostgreSQL server of our own in a folder (Debian's initdb and pg_ctl; as the `postgres` user
when run as root, since initdb refuses root), trust authentication, loopback only. For `recovery up`
and the tests' throwaway server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from app.binaries import CannotStart, postgres_bindir


def answers(url: str, timeout: int = 3) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


class LocalServer:
    """`folder/data` holds the cluster, `folder/postgres.log` its log; kept between starts."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder.resolve(), port
        folder = self.folder
        self.data, self.log = folder / "data", folder / "postgres.log"
        self.bindir = postgres_bindir()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.prefix, *args], capture_output=True, text=True)
        if done.returncode:
            said = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
            if self.log.exists():  # pg_ctl says "Examine the log output": the server's reason
                said += "\n" + "\n".join(line for line in self.log.read_text(errors="replace").splitlines()
                                         if "FATAL" in line)
            last = said.splitlines()[-1]
            raise CannotStart(f"{Path(args[0]).name} failed: {last} (log: {self.log})")

    def start(self) -> int:
        """Starts the server (creating the cluster the first time); returns the postmaster's pid."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(self.folder, "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.log),
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")
        for _ in range(50):
            if answers(self.url):
                break
            time.sleep(0.2)
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True)
