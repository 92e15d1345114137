"""Options a downloader middleware gives the browser context of one rendered page.

Each rendered page has a browser context of its own, created by scrapy-playwright with the
request's ``playwright_context_kwargs`` meta. Cookies and HTTP credentials are given there by
``process_request`` (the browser then scopes them itself), and taken back when the download is
over: a retried request, stored in a ``JOBDIR`` or Redis queue, does not carry them.
"""

from __future__ import annotations

from typing import Any

from scrapy.http import Request

__all__ = ["give_browser_context", "is_rendered", "take_back_browser_context"]

CONTEXT_KWARGS = "playwright_context_kwargs"


def is_rendered(request: Request) -> bool:
    """Whether ``request`` is a page the browser loads (``render=yes``)."""
    return bool(request.meta.get("playwright"))


def give_browser_context(request: Request, **options: Any) -> None:
    """Add ``options`` to the keyword arguments of the browser context ``request`` is rendered in."""
    # A new dict: the one in meta may be shared with copies of the request.
    request.meta[CONTEXT_KWARGS] = {**request.meta.get(CONTEXT_KWARGS, {}), **options}


def take_back_browser_context(request: Request, *names: str) -> None:
    """Remove the options ``names`` that :func:`give_browser_context` added."""
    options = request.meta.get(CONTEXT_KWARGS)
    if options and any(name in options for name in names):
        request.meta[CONTEXT_KWARGS] = {key: value for key, value in options.items() if key not in names}
