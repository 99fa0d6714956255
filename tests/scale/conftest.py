"""A throwaway PostgreSQL server for the scale-out tests, and the helpers of the fault tests.

``postgres_server`` starts Debian's server binaries (``/usr/lib/postgresql/*/bin``, or
``initdb`` on PATH) on loopback on a free port, in a temporary folder, with no system service,
and removes it all at the end of the session. ``initdb`` refuses to run as root, so as root the
cluster belongs to the ``postgres`` system user (the ``postgresql`` package creates it). The
tests that need it skip only where no PostgreSQL binaries exist; ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 60
"""How long ``pg_ctl start`` may take before the fixture gives up (seconds)."""


def _server_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL server binaries; None when there are none."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = [p for p in found if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A running throwaway cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, bin_dir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self.bin_dir, self.root, self.port, self._as_user = bin_dir, root, port, as_user
        self._count = 0

    def run(self, tool: str, *args: str) -> None:
        """Run one server tool as the cluster's owner, its output added to ``root/tools.log``."""
        with open(self.root / "tools.log", "ab") as log:
            subprocess.run(
                [*self._as_user, str(self.bin_dir / tool), *args],
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_S,
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "nlfs") -> str:
        """Create an empty database; returns its ``postgresql://`` URL."""
        import psycopg

        self._count += 1
        name = f"{prefix}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on 127.0.0.1 for the whole session (trust authentication)."""
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (install Debian's `postgresql` package)")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    root = Path(tempfile.mkdtemp(prefix="nlfs-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root; the package's system user owns the cluster instead.
        shutil.chown(root, user="postgres", group="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    server = PostgresServer(bin_dir, root, _free_port(), as_user)
    server.run("initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories='' "
        # A throwaway cluster: durability buys nothing and costs the tests time.
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = ("pg_ctl", "-D", str(data), "-w", "-t", str(START_TIMEOUT_S))
    server.run(*pg_ctl, "-l", str(root / "server.log"), "-o", options, "start")
    try:
        yield server
    finally:
        server.run(*pg_ctl, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
