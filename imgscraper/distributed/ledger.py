"""What a worker of a shared crawl holds (see :mod:`imgscraper.distributed`).

A request a worker took from the shared queue stays in its ``taken`` hash in
Redis until it is parsed and everything it yielded has gone through the
engine: its links queued, its images through the item pipeline.
:class:`WorkLedger` keeps that account in the worker's memory and says when a
request is done; :class:`~imgscraper.distributed.crawl.SharedCrawl` then lets it go in Redis.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scrapy import Request

__all__ = ["PARENT", "TOKEN", "WorkLedger"]

#: Request meta keys: the token of a page a worker took, and of the page a request was found on.
TOKEN = "imgscraper_page_token"
PARENT = "imgscraper_page_parent"


@dataclass
class _Unit:
    """A request this worker took from the queue: still being fetched, parsed, outputs pending."""

    fetching: bool = True
    parsed: bool = False
    pending: int = 0


class WorkLedger:
    """The requests (pages, style sheets) a worker took and the images they brought.

    A taken request stays *held* until it is parsed and everything it yielded
    has gone through the engine; ``on_done(token)`` is called then.
    :meth:`busy` says whether the worker has enough work for now.
    """

    def __init__(self, max_images: int, on_done: Callable[[str], None] | None = None):
        self.max_images = max(1, max_images)
        self.on_done = on_done
        self.units: dict[str, _Unit] = {}
        self.images_in_progress = 0
        self._item_units: dict[int, str] = {}
        self._tokens = itertools.count(1)
        self._parsed = 0
        self._images_kept = 0

    def take(self, request: Request, token: str | None = None) -> Request:
        """Hold ``request`` (taken from the queue) under a new token, or ``token``."""
        token = token or str(next(self._tokens))
        request.meta[TOKEN] = token
        self.units[token] = _Unit()
        return request

    def fetched(self, request: Request) -> None:
        unit = self.units.get(request.meta.get(TOKEN, ""))
        if unit is not None:
            unit.fetching = False

    def busy(self) -> bool:
        """Whether this worker expects at least ``max_images`` images to fetch soon: those of
        its parsed pages, and an estimate for the pages it is fetching (no room for a page)."""
        per_page = self._images_kept / self._parsed if self._parsed else self.max_images
        fetching = sum(1 for unit in self.units.values() if unit.fetching)
        return self.images_in_progress + fetching * per_page >= self.max_images

    def output(self, token: str | None, obj: Any) -> None:
        """``obj`` (item or request), yielded by the unit ``token``, is on its way."""
        unit = self.units.get(token) if token is not None else None
        if unit is None:
            return
        unit.pending += 1
        if isinstance(obj, Request):
            obj.meta[PARENT] = token
        else:
            self._item_units[id(obj)] = token
            self.images_in_progress += 1

    def parsed(self, token: str | None, images: int) -> None:
        self._parsed += 1
        self._images_kept += images
        unit = self.units.get(token) if token is not None else None
        if unit is not None:
            unit.fetching, unit.parsed = False, True
            self._maybe_done(token)

    def output_done(self, token: str | None) -> None:
        unit = self.units.get(token) if token is not None else None
        if unit is not None:
            unit.pending -= 1
            self._maybe_done(token)

    def item_done(self, item: Any) -> None:
        token = self._item_units.pop(id(item), None)
        if token is not None:
            self.images_in_progress -= 1
            self.output_done(token)

    def clear(self) -> None:
        """The worker is idle: everything it held is done."""
        self.units.clear()
        self._item_units.clear()
        self.images_in_progress = 0

    def _maybe_done(self, token: str) -> None:
        unit = self.units[token]
        if unit.parsed and unit.pending <= 0:
            del self.units[token]
            if self.on_done is not None:
                self.on_done(token)
