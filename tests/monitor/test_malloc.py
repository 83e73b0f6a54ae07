"""glibc malloc settings of ``driftloop serve`` (monitor.runtime.malloc)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from monitor.runtime.malloc import ARENA_MAX, glibc, trimmer, tune_malloc


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_serve_caps_the_arenas_and_leaves_the_mmap_threshold_dynamic() -> None:
    libc = FakeLibc()
    assert tune_malloc(libc, {}) == {"arena_max": ARENA_MAX}
    assert libc.calls == [(-8, ARENA_MAX)]


def test_what_the_operator_set_wins() -> None:
    libc = FakeLibc()
    assert tune_malloc(libc, {"MALLOC_ARENA_MAX": "4"}) == {}
    assert tune_malloc(libc, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}) == {}
    assert libc.calls == []


def test_a_refused_setting_is_not_reported() -> None:
    class Refusing(FakeLibc):
        def mallopt(self, parameter: int, value: int) -> int:
            return 0

    assert tune_malloc(Refusing(), {}) == {}


def test_this_process_runs_on_glibc() -> None:
    # the images and the CI run glibc; elsewhere (musl) nothing is tuned
    libc = glibc()
    assert libc is not None
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    assert libc.gnu_get_libc_version().decode().startswith("2.")


def test_trimmer_calls_malloc_trim_with_no_padding() -> None:
    class Trimming(FakeLibc):
        def __init__(self) -> None:
            super().__init__()
            self.trims: list[int] = []

        def malloc_trim(self, pad: int) -> int:
            self.trims.append(pad)
            return 1

    libc = Trimming()
    trim = trimmer(libc)
    assert trim is not None and trim() is True
    assert libc.trims == [0]


def test_no_trimmer_without_malloc_trim() -> None:
    assert trimmer(FakeLibc()) is None


def _rss_kb() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE") // 1024


def test_a_trim_gives_back_the_holes_left_between_live_blocks() -> None:
    # 64 MB in 4 kB blocks (malloc, not pymalloc), then all but one block in 64 freed:
    # the survivors pin the heap, so free() alone returns nothing to the system
    blocks = [bytearray(4096) for _ in range(16384)]
    for block in blocks:
        block[::512] = b"x" * 8  # touch every page
    survivors = blocks[::64]
    del blocks
    trim = trimmer()
    assert trim is not None
    before = _rss_kb()
    trim()
    after = _rss_kb()
    assert before - after > 32 * 1024, (before, after)
    assert len(survivors) == 256
