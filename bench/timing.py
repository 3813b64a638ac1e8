"""Timing shared by the benchmarks: ours and the baseline in turns, so that the machine's drift touches both."""

from __future__ import annotations

import time
from collections.abc import Callable


def elapsed(func: Callable[[], object]) -> float:
    """Seconds `func()` took, or the `elapsed` it recorded itself (its work without its set-up)."""
    start = time.perf_counter()
    func()
    return getattr(func, "elapsed", time.perf_counter() - start)


def in_turns(repeats: int, ours: Callable[[], object], plain: Callable[[], object]) -> tuple[list[float], list[float]]:
    """Seconds of each call of `ours` and of `plain`, run in turns (ours, plain, ours, ...) `repeats` times."""
    times = [(elapsed(ours), elapsed(plain)) for _ in range(repeats)]
    return [t for t, _ in times], [t for _, t in times]


def best_in_turns(repeats: int, ours: Callable[[], object], plain: Callable[[], object]) -> tuple[float, float]:
    """The best (least) seconds of `ours` and of `plain`, run in turns `repeats` times (`in_turns`)."""
    ours_times, plain_times = in_turns(repeats, ours, plain)
    return min(ours_times), min(plain_times)
