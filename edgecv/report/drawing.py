"""Figures drawn in parallel: while a report's sections are put together, forked worker processes draw and
encode its figures, one per core, and the page waits for them only when it is written. Where fork is not safe
(not Linux) or there is one core, each figure is drawn in this process when it is asked for."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from edgecv.report.figures import png

MAX_WORKERS = 4  # a report has 10 to 16 figures

_pool: ProcessPoolExecutor | None = None


class Pending:
    """A figure a worker is drawing; :meth:`result` waits for its PNG bytes, and draws it here if the worker
    died (killed for memory, say)."""

    def __init__(self, make: Callable[..., Any], args: tuple[Any, ...], future: Future[bytes]):
        self._make, self._args, self._future = make, args, future

    def result(self) -> bytes:
        try:
            return self._future.result()
        except BrokenProcessPool:
            return png(self._make(*self._args))


def draw(make: Callable[..., Any], *args: Any) -> bytes | Pending:
    """``png(make(*args))``, in a worker while :func:`drawing` is on, else now. ``make`` is a module-level figure
    function (a worker finds it by name) and ``args`` plain data."""
    if _pool is None:
        return png(make(*args))
    return Pending(make, args, _pool.submit(_drawn, make, args))


def _drawn(make: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    return png(make(*args))


@contextlib.contextmanager
def drawing() -> Iterator[None]:
    """Figures asked for inside this block are drawn by worker processes forked from this one, which only draw:
    no torch or runtime call runs in them, and what they inherit is never garbage-collected there (a runtime's
    session freed in a child waits forever for thread-pool threads that fork did not copy). The block ends once
    every figure is drawn."""
    global _pool
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    if _pool is not None or workers < 2 or not sys.platform.startswith("linux"):
        yield
        return
    gc.collect()  # garbage holding a runtime's session (a bench's) is freed here, where its threads exist
    _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=gc.freeze)
    try:
        yield
    finally:
        pool, _pool = _pool, None
        pool.shutdown(wait=True, cancel_futures=True)
