"""Progress bars for long stages (a benchmark, its training, its sample sweep, its evaluation), with
ETA; shown only on an interactive terminal (stderr is a TTY) and never when ``PANFLOW_PROGRESS=0``.

``stage(desc, total)`` counts items (``bar.update(1)``); ``timed(desc, seconds)`` is a clock against
an estimate (the last recorded run), ticking by itself, for work that cannot count its own steps.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


def enabled() -> bool:
    """Whether bars are drawn: stderr is a terminal and ``PANFLOW_PROGRESS`` is not ``0``."""
    return os.environ.get("PANFLOW_PROGRESS", "1") != "0" and sys.stderr.isatty()


def stage(desc: str, total: int | None = None, unit: str = "it") -> Any:
    """A counting bar (``update(n)``, ``close()``, context manager); a silent one when not :func:`enabled`."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True)


@contextmanager
def timed(desc: str, seconds: float | None) -> Iterator[None]:
    """A bar that fills with wall time against ``seconds`` (None: elapsed time only) while the block runs."""
    if not enabled():
        yield
        return
    total = max(1, round(seconds)) if seconds else None
    bar = tqdm(total=total, desc=desc, unit="s", leave=False, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} of ~{total}s, ETA {remaining}" if total
               else "{desc}: {elapsed}")
    stop = threading.Event()
    t0 = time.perf_counter()

    def tick() -> None:
        while not stop.wait(1.0):
            done = round(time.perf_counter() - t0)
            bar.update(max(0, min(done, total or done) - bar.n))

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        bar.close()


__all__ = ["enabled", "stage", "timed"]
