"""Fixtures shared by every test package.

``mlflow_server``: a real ``mlflow server`` (SQLite backend, local artifacts) on a
free loopback port for the whole session, stopped by its PID; yields its URL.
``example_files`` / ``example_baseline``: the seeded "carloan" example dataset of
:mod:`monitor.cli.examples` and its baseline (with a reference sample), built once.
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

from monitor.cli.examples import ExampleFiles, write_example
from tests.support.procs import start_mlflow

POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


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
