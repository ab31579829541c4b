"""The soak's own Postgres cluster and Redis server, which it may restart at will.

What it is: ``PrivatePostgres`` (``initdb`` into a temporary directory with the binaries
under ``/usr/lib/postgresql/*/bin``, trust auth, a free port on 127.0.0.1; run as the
``postgres`` user when this process is root) and ``PrivateRedis`` (``redis-server`` on a
free port, append-only file on, as a broker with persistence is deployed). Each runs in
its own session and is stopped by its PID; ``restart`` is a clean stop (Postgres' fast
shutdown, Redis' SIGTERM, which writes its data) and a start on the same data.

What it is not: a way to touch the shared servers on 5432/6379. Nothing here connects to them.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import BenchError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise BenchError("no Postgres server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class _Service:
    """A server process in its own session, with its log in ``log_dir``."""

    name = "service"

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _spawn(self, args: list[str], **popen) -> None:
        self.starts += 1
        with open(self.log_dir / f"{self.name}-{self.starts}.log", "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise BenchError(f"the soak's {self.name} exited with {self.proc.returncode}; see {self.log_dir}")
            if time.monotonic() > deadline:
                raise BenchError(f"the soak's {self.name} was not ready within {timeout:g} s; see {self.log_dir}")
            time.sleep(0.1)

    def restart(self, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()
        self.wait_ready()


class PrivatePostgres(_Service):
    name = "postgres"

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="taskhub-soak-pg-"))
        self.data = self.root / "data"
        as_root = os.geteuid() == 0
        self.user = pwd.getpwnam("postgres") if as_root else None
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        done = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            **self._as_owner(),
        )
        if done.returncode:
            raise BenchError(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1]}")

    def _as_owner(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [], "cwd": str(self.root)}

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        self._spawn(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
            ],
            **self._as_owner(),
        )

    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(f"{self.url}/postgres", connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        super().stop(sig, timeout)  # SIGINT: fast shutdown, as `pg_ctl stop -m fast`

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis(_Service):
    name = "redis"

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        if not shutil.which("redis-server"):
            raise BenchError("redis-server is not on PATH")
        self.root = Path(tempfile.mkdtemp(prefix="taskhub-soak-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ]
        )

    def ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
