"""Tests for imgscraper.middlewares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgscraper.middlewares import parse_retry_after

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Builds the retry middleware in a new interpreter: which exceptions it retries, and
#: whether Twisted's HTTP client got imported on the way.
RETRY_EXCEPTIONS_PROBE = """
import json, sys
from scrapy.utils.reactor import install_reactor
from scrapy.utils.test import get_crawler
from imgscraper.middlewares import RetryAfterMiddleware
reactor = sys.argv[1] == "True"
if reactor:
    install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
crawler = get_crawler(settings_dict={"TWISTED_REACTOR_ENABLED": reactor})
middleware = RetryAfterMiddleware.from_crawler(crawler)
print(json.dumps({
    "retried": sorted(e.__name__ for e in middleware.exceptions_to_retry),
    "twisted_client": "scrapy.core.downloader.handlers.http11" in sys.modules,
}))
"""


@pytest.mark.parametrize("reactor", [False, True])
def test_retry_exceptions_of_twisted_client_only_with_the_reactor(reactor):
    """Without a reactor nothing raises TunnelError: it is not retried, and Twisted's HTTP
    client (and its TLS code, 60 ms of start-up) is not imported to load it."""
    done = subprocess.run([sys.executable, "-c", RETRY_EXCEPTIONS_PROBE, str(reactor)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert ("TunnelError" in probe["retried"]) is reactor
    assert probe["twisted_client"] is reactor
    assert {"DownloadTimeoutError", "ConnectionLost", "ResponseDataLossError", "OSError"} <= set(probe["retried"])


def test_parse_retry_after():
    assert parse_retry_after(b"120") == 120.0
    assert parse_retry_after("Wed, 25 Nov 2026 03:00:10 GMT", now=1795575600.0) == 10.0
    assert parse_retry_after("Wed, 25 Nov 2026 02:00:00 GMT", now=1795575600.0) == 0.0
    assert parse_retry_after(b"soon") is None
    assert parse_retry_after(None) is None

