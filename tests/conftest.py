"""Fixtures shared by every test package.

``mlflow_server``: a real ``mlflow server`` (SQLite backend, local artifacts) on a
free loopback port for the whole session, stopped by its PID; yields its URL.
``example_files`` / ``example_baseline``: the seeded "carloan" example dataset of
:mod:`monitor.cli.examples` and its baseline (with a reference sample), built once.
``tansu``: one memory-only Tansu broker for the session (tests use their own
topics and consumer groups, see :func:`tests.support.service.new_topics`).
``stream_data``: the seeded example stream cut in windows of
:data:`tests.support.service.WINDOW_ROWS` rows (six windows, drift in windows 3
and 5), written to CSV and read back, so the rows produced to Kafka are exactly
the rows ``driftloop evaluate`` reads; its baseline is ``example_baseline``.
``postgres_url``: a fresh, uniquely named database on the PostgreSQL server at
127.0.0.1:5432 (user postgres, trust auth; running here and in CI), dropped at
the end of the test. A test that needs it fails when the server is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from monitor.cli.examples import ExampleFiles, generate, write_example
from monitor.tables import read_table
from tests.support import procs
from tests.support.procs import start_mlflow, start_tansu
from tests.support.service import SEED, WINDOW_ROWS, StreamData

POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture(autouse=True)
def stop_what_the_test_left_running() -> Iterator[None]:
    """Processes a test started and did not stop (an assertion failed in between) are
    stopped by their PIDs when it ends; session processes started earlier are left."""
    before = len(procs.STARTED)
    yield
    for proc in procs.STARTED[before:]:
        if proc.alive():
            proc.kill()
    del procs.STARTED[before:]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = f"driftloop_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            # FORCE: a connection a failed test left open must not keep the database alive
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    try:
        yield f"http://127.0.0.1:{proc.port}"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def example_files(tmp_path_factory: pytest.TempPathFactory) -> ExampleFiles:
    return write_example(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="session")
def example_baseline(example_files: ExampleFiles) -> Path:
    from monitor.baseline import build_baseline, reference_sample, sample_path_for
    from monitor.tables import read_table

    frame = read_table(example_files.reference)
    baseline = build_baseline(frame, "carloan", target="repaid", prediction="prediction",
                              score="score", id_column="request_id", timestamp="timestamp")
    path = baseline.save(example_files.reference.parent / "baseline.json")
    reference_sample(frame, baseline, 3000).to_parquet(sample_path_for(path), index=False)
    return path


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = start_tansu(tmp_path_factory.mktemp("tansu"))
    try:
        yield f"127.0.0.1:{proc.port}"
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def stream_data(example_baseline: Path, example_files: ExampleFiles,
                tmp_path_factory: pytest.TempPathFactory) -> StreamData:
    data = generate(seed=SEED, reference_rows=20_000, window_rows=WINDOW_ROWS)
    # the session baseline is built from the same seed's reference rows
    assert len(read_table(example_files.reference)) == len(data.reference)
    directory = tmp_path_factory.mktemp("stream")
    current_csv, labels_csv = directory / "current.csv", directory / "labels.csv"
    data.current.to_csv(current_csv, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    data.labels.to_csv(labels_csv, index=False)
    return StreamData(example_baseline, current_csv, labels_csv, read_table(current_csv),
                      read_table(labels_csv))
