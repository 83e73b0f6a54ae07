"""Drift reports on disk: compressed pages with a note, the newest kept per model, names
that cannot leave the directory, and where the service puts them."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from monitor.config import Config
from monitor.evaluate import ReportFiles
from monitor.runtime.build import reports_dir


def write(files: ReportFiles, key: str, end: str, *, model: str = "carloan",
          version: str = "1") -> None:
    files.write(model, version, key, f"<html>{model} {version} {key}</html>", {"end": end})


def test_written_report_reads_back_compressed_and_plain(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep=3)
    stored = files.write("carloan", "1", "p0:7", "<html>é</html>", {"end": "2019-05-01T00:00:00Z"})
    assert stored.html_path.name == "p0%3A7.html.gz"
    assert gzip.decompress(stored.gzip_bytes()) == "<html>é</html>".encode()
    found = files.find("carloan", "p0:7")
    assert found is not None and found.html_bytes() == "<html>é</html>".encode()
    assert found.meta["end"] == "2019-05-01T00:00:00Z" and found.meta["key"] == "p0:7"
    assert not list(tmp_path.rglob("*.partial"))


def test_latest_is_the_newest_window_end_not_the_last_written(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep=10)
    write(files, "p1:4", "2019-05-03T00:00:00Z")
    write(files, "p0:2", "2019-05-01T00:00:00Z")  # written later, an older window
    latest = files.latest("carloan")
    assert latest is not None and latest.key == "p1:4"
    assert [r.key for r in files.newest_first("carloan")] == ["p1:4", "p0:2"]


def test_only_the_newest_keep_reports_of_a_model_stay(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep=2)
    for day in range(1, 6):
        write(files, f"p0:{day}", f"2019-05-0{day}T00:00:00Z")
    write(files, "p0:9", "2019-05-09T00:00:00Z", model="fraud")
    assert [r.key for r in files.newest_first("carloan")] == ["p0:5", "p0:4"]
    assert len(list((tmp_path / "carloan").rglob("*.html.gz"))) == 2
    assert len(list((tmp_path / "carloan").rglob("*.json"))) == 2
    assert [r.key for r in files.newest_first("fraud")] == ["p0:9"]


def test_a_window_key_of_two_versions_is_found_by_version(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep=5)
    write(files, "p0:3", "2019-05-01T00:00:00Z", version="1")
    write(files, "p0:3", "2019-05-02T00:00:00Z", version="2")
    found = files.find("carloan", "p0:3")
    assert found is not None and found.version == "2"
    older = files.find("carloan", "p0:3", version="1")
    assert older is not None and older.html_bytes() == b"<html>carloan 1 p0:3</html>"
    assert files.find("carloan", "p0:3", version="7") is None
    assert files.find("carloan", "p0:4") is None and files.latest("nobody") is None


@pytest.mark.parametrize("model", ["..", "../../etc", "a/b", ".hidden", "x\\y", ""])
def test_model_and_version_names_stay_inside_the_directory(tmp_path: Path, model: str) -> None:
    root = tmp_path / "reports"
    files = ReportFiles(root, keep=5)
    stored = files.write(model, "..", "p0:1", "<html></html>", {})
    assert stored.html_path.resolve().is_relative_to(root.resolve())
    assert [p for p in tmp_path.iterdir()] == [root]
    found = files.find(model, "p0:1")
    assert found is not None and (found.model, found.version) == (model, "..")


def test_a_page_without_its_note_is_not_listed(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep=5)
    write(files, "p0:1", "2019-05-01T00:00:00Z")
    (tmp_path / "carloan" / "1" / "p0%3A1.json").unlink()
    assert files.newest_first("carloan") == []


def test_without_a_directory_a_temporary_one_is_made_at_the_first_report() -> None:
    files = ReportFiles(None, keep=2)
    assert files.newest_first("carloan") == [] and files.directory is None
    stored = files.write("carloan", "1", "p0:1", "<html></html>", {})
    try:
        assert files.directory is not None and files.directory.name.startswith(
            "driftloop-reports-")
        assert stored.html_path.is_relative_to(files.directory)
    finally:
        shutil.rmtree(files.directory or "/nonexistent", ignore_errors=True)


@pytest.mark.parametrize(("state", "reports", "want"), [
    ("sqlite:///var/lib/driftloop/state.db", None, Path("var/lib/driftloop/state-reports")),
    ("sqlite:////srv/driftloop.db", None, Path("/srv/driftloop-reports")),
    ("sqlite:///driftloop.db", "/data/reports", Path("/data/reports")),
    ("postgresql+psycopg://u@db/driftloop", None, None),
    ("sqlite://", None, None),
])
def test_reports_dir_is_configured_or_beside_a_sqlite_file_or_temporary(
        state: str, reports: str | None, want: Path | None) -> None:
    config = Config.model_validate({"state": {"url": state}, "reports": {"dir": reports}})
    assert reports_dir(config) == want


def test_a_temporary_report_folder_goes_with_the_process_and_a_configured_one_stays(
        tmp_path: Path) -> None:
    temporary = ReportFiles(None, keep=3)
    stored = temporary.write("carloan", "1", "p0:0", "<html></html>", {"end": "x"})
    folder = temporary.directory
    assert folder is not None and stored.html_path.is_relative_to(folder) and folder.is_dir()
    temporary.close()
    assert not folder.exists()
    configured = ReportFiles(tmp_path / "reports", keep=3)
    configured.write("carloan", "1", "p0:0", "<html></html>", {"end": "x"})
    configured.close()
    assert (tmp_path / "reports").is_dir()
    ReportFiles(None, keep=3).close()  # nothing written, nothing made: nothing to remove
