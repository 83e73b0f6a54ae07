"""glibc malloc settings of ``driftloop serve`` (monitor.runtime.malloc)."""

from __future__ import annotations

import ctypes

from monitor.runtime.malloc import ARENA_MAX, glibc, tune_malloc


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
