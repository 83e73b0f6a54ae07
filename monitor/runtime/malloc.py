"""glibc malloc settings for ``driftloop serve``, a process meant to run for months.

Measured with ``benchmarks/soak_service.py`` (20k ev/s with labels, 1h event-time
windows; ``malloc_info`` every 100 s): glibc gave the service 12 arenas, one per
thread that allocated (consumer, Kafka IO, HTTP, scheduler workers, report writer).
The consumer thread's arena held ~16 MB free inside its heap and the Kafka IO
thread's 13 to 16 MB of its 15 to 31 MB: the fetch responses and a poll's columns are
blocks of hundreds of kB to MBs which glibc, once such a block has been freed, no
longer maps on their own (its mmap threshold rises up to 32 MB), so they are cut from
the arenas and their holes stay resident between long-lived small objects.

At start-up, before the threads exist, ``M_ARENA_MAX`` is set to 2: the threads share
two arenas instead of one each, so the free space left in them is shared too.

Not set: a fixed ``M_MMAP_THRESHOLD`` (256 kB), which maps every large block on its own
and gives it back when freed. It held RSS flatter still, but every poll then pays the
page faults of its fetch buffers and columns again: ``benchmarks/bench_service.py``
measured 19.4 against 16.3 µs of CPU per event (count windows, 300k events, median of
3), a cost the soak showed no need for once SQLite's statement cache was bounded
(``monitor.store.join``). ``MALLOC_MMAP_THRESHOLD_`` sets it for those who want it.

Every :data:`TRIM_SECONDS` a job of ``driftloop serve`` calls ``malloc_trim(0)``
(:func:`trimmer`), which gives the free pages inside the arenas back to the system
(``MADV_DONTNEED``) as well as the free top of each heap. Those holes otherwise come
and go with the size of what the loop holds (fetch buffers, a poll's columns, a
window's rows): the soak's RSS moved in a 15 MB band (343 to 360 MB) around a flat
level, enough for a 10-second sampling to read a slope of +1.5 MB/min over five
minutes. A trim takes milliseconds, on the scheduler's thread; the pages it gives back
are faulted in again when used, once per trim instead of once per poll.

A variable the operator set (``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES``) wins; other C
libraries (musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ARENA_MAX", "TRIM_SECONDS", "trimmer", "tune_malloc"]

ARENA_MAX = 2
TRIM_SECONDS = 10.0
# mallopt parameters (malloc.h)
_M_ARENA_MAX = -8
# setting -> (mallopt parameter, value, the environment variable that overrides it)
_SETTINGS = {
    "arena_max": (_M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX"),
}


def glibc() -> Any | None:
    """The process's glibc, or None for another C library."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune_malloc(libc: Any | None = None,
                environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Apply the settings the environment does not set; returns those applied."""
    libc = libc if libc is not None else glibc()
    if libc is None or "GLIBC_TUNABLES" in environ:
        return {}
    applied: dict[str, int] = {}
    for name, (parameter, value, variable) in _SETTINGS.items():
        if variable not in environ and libc.mallopt(parameter, value) == 1:
            applied[name] = value
    return applied


def trimmer(libc: Any | None = None) -> Callable[[], bool] | None:
    """A call that gives glibc's free memory back to the system (``malloc_trim(0)``;
    True when it released some), or None on another C library."""
    libc = libc if libc is not None else glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return None
    trim = libc.malloc_trim
    return lambda: bool(trim(0))
