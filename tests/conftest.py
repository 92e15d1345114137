"""Fixtures shared by the tests; the code behind them is in ``tests/support/``.

``site_server`` (function scope) / ``site_server_module`` (module scope)
    A :class:`~tests.support.sitegen.SiteServer`: the generated site served on 127.0.0.1
    (``.url``, ``.site``, ``.server``, ``.servers``) plus, when 127.0.0.2 can be bound, a second
    "other site" server (``.other``). Stopped afterwards.
``run_crawl`` (session scope)
    :func:`tests.support.crawl.run_crawl` with its output under the session's temporary
    directory: ``run_crawl(args, store=None, out_dir=None, env=None, servers=(), ...) ->
    CrawlResult``.
``chromium`` (session scope)
    The path of the browser the renderer uses (Debian's Chromium).
``redis_url`` (module scope)
    ``redis://127.0.0.1:PORT/0`` of a throw-away ``redis-server``.
``s3_endpoint`` (module scope)
    ``http://127.0.0.1:PORT`` of moto's S3 server (credentials: ``tests.support.servers.S3_ENV``).

Markers (pytest.ini): ``crawl`` (the test starts a crawl), ``chromium`` (it needs Chromium),
``services`` (it needs Redis, Scrapyd or S3). A test gets them from the fixtures above that it
uses, directly or through other fixtures (:data:`FIXTURE_MARKERS`); a test that starts those
things itself carries them explicitly, and the helpers that start them refuse to in a test
without its marker (:mod:`tests.support.needs`). ``make test-fast`` runs the tests with none.
"""

from __future__ import annotations

import functools
from typing import Iterator

import pytest

import imgscraper.settings
from tests.support.crawl import run_crawl as run_crawl_subprocess
from tests.support.needs import require_program, set_running_test_markers
from tests.support.servers import redis_server, s3_server
from tests.support.sitegen import SiteServer, serve_site

#: The marker a test gets from each fixture, when the fixture is among those it uses.
FIXTURE_MARKERS = {
    "run_crawl": "crawl",
    "chromium": "chromium",
    "redis_url": "services",
    "s3_endpoint": "services",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in sorted(FIXTURE_MARKERS.keys() & set(getattr(item, "fixturenames", ()))):
            item.add_marker(FIXTURE_MARKERS[fixture])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    set_running_test_markers(marker.name for marker in item.iter_markers())


@pytest.fixture
def site_server(tmp_path) -> Iterator[SiteServer]:
    with serve_site(tmp_path / "www") as srv:
        yield srv


@pytest.fixture(scope="module")
def site_server_module(tmp_path_factory) -> Iterator[SiteServer]:
    with serve_site(tmp_path_factory.mktemp("www")) as srv:
        yield srv


@pytest.fixture(scope="session")
def run_crawl(tmp_path_factory):
    """``run_crawl(args, store=None, out_dir=None, env=None, servers=(), ...) -> CrawlResult``."""
    return functools.partial(run_crawl_subprocess, base_dir=tmp_path_factory.mktemp("crawls"))


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_program(imgscraper.settings.IMGSCRAPER_RENDER_BROWSER)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint
