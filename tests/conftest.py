"""Fixtures shared by every test package.

``mlflow_server``: a real ``mlflow server`` (SQLite backend, local artifacts) on a
free loopback port for the whole session, stopped by its PID; yields its URL.
``example_files`` / ``example_baseline``: the seeded "carloan" example dataset of
:mod:`monitor.examples` and its baseline (with a reference sample), built once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.examples import ExampleFiles, write_example
from tests.support.procs import start_mlflow


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
    from monitor.baseline import build_baseline, reference_sample
    from monitor.baseline_io import sample_path_for
    from monitor.tables import read_table

    frame = read_table(example_files.reference)
    baseline = build_baseline(frame, "carloan", target="repaid", prediction="prediction",
                              score="score", id_column="request_id", timestamp="timestamp")
    path = baseline.save(example_files.reference.parent / "baseline.json")
    reference_sample(frame, baseline, 3000).to_parquet(sample_path_for(path), index=False)
    return path
