"""Interpreter tuning for a crawl process (``IMGSCRAPER_GC_THRESHOLD``)."""

from __future__ import annotations

import gc

__all__ = ["tune_garbage_collector"]


def tune_garbage_collector(threshold: int) -> None:
    """Freeze the objects alive now and run the collector's first generation
    every ``threshold`` allocations instead of Python's 700; 0 changes nothing.

    Reference counting frees almost everything a crawl allocates (requests,
    responses, tasks, items). The cyclic collector still ran every few
    images, and each of its full passes walked every object alive since
    start-up (modules, classes, settings): frozen ones are left out.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 20, 20)  # the older generations half as often as Python
