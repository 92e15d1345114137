"""A readable log (imgscraper.extensions.failurelines.FewLinesPerFailureHost): per failure reason and host, the
first few failures are WARNING lines, the rest one line at the end; items and stats keep them all."""

from __future__ import annotations

import logging
import re

import pytest

from imgscraper.extensions.failurelines import FewLinesPerFailureHost
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

MISSING_IMAGES = 50
MISSING_PAGES = 5
OTHER_MISSING = 4


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A page with 50 missing images and links to 5 missing pages on its host, 4 missing images
    on another host (127.0.0.2), and 2 good images."""
    root, other_root = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("other")
    with HTTPTestServer(root) as server, HTTPTestServer(other_root, host="127.0.0.2") as other:
        for i in range(2):
            (root / f"good{i}.png").write_bytes(png(i))
        html = "".join(f'<img src="/missing/{i}.png">' for i in range(MISSING_IMAGES))
        html += "".join(f'<img src="{other.url}missing/{i}.png">' for i in range(OTHER_MISSING))
        html += '<img src="/good0.png"><img src="/good1.png">'
        html += "".join(f'<a href="/nope/{i}.html">page {i}</a>' for i in range(MISSING_PAGES))
        (root / "index.html").write_text(html)
        yield server, other


def warnings(result) -> list[str]:
    return [line.partition(" WARNING: ")[2] for line in result.stderr.splitlines() if " WARNING: " in line]


def test_first_three_failures_per_reason_and_host_then_one_line(site, run_crawl):
    server, other = site
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1"])
    assert result.returncode == 0, result.tail()
    lines = warnings(result)
    assert len(lines) == 3 + 3 + 2, lines
    # The end: one line per (reason, host), most failures first.
    assert lines[-2:] == [
        f"... and {MISSING_IMAGES + MISSING_PAGES - 3} more http-404 from {server.netloc}",
        f"... and {OTHER_MISSING - 3} more http-404 from {other.netloc}",
    ]
    first = lines[:-2]
    assert len([line for line in first if server.netloc in line]) == 3
    assert len([line for line in first if other.netloc in line and line.startswith("Image failed (http-404)")]) == 3
    # Items and stats keep every failure.
    failed = [item for item in result.items if item["status"] == "failed"]
    assert len(failed) == MISSING_IMAGES + OTHER_MISSING
    assert {item["reason"] for item in failed} == {"http-404"}
    assert result.stats.get("imgscraper/images/failed/http-404") == MISSING_IMAGES + OTHER_MISSING
    assert result.stats.get("imgscraper/pages_failed/http-404") == MISSING_PAGES


def test_a_line_per_failure_when_off(site, run_crawl):
    server, _ = site
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-s", "IMGSCRAPER_FAILURE_LINES=0"])
    assert result.returncode == 0, result.tail()
    lines = warnings(result)
    assert len([line for line in lines if line.startswith("Image failed (http-404)")]) == MISSING_IMAGES + OTHER_MISSING
    assert len([line for line in lines if line.startswith("Cannot fetch page")]) == MISSING_PAGES
    assert not [line for line in lines if " more " in line]


def record(logger: str, reason: str, url: str, level: int = logging.WARNING) -> logging.LogRecord:
    args = ({"reason": reason, "url": url},)
    return logging.LogRecord(logger, level, __file__, 1, "Failed (%(reason)s): %(url)s", args, None)


def test_counted_only_reasons_and_other_lines():
    """host-unreachable failures are never logged one by one: their host's own line said it;
    the closing line counts images and pages. Errors and lines without a reason pass."""
    lines = FewLinesPerFailureHost(lines=2)
    shown = [
        lines.filter(record("imgscraper.pipelines.images", "host-unreachable", f"http://dead.example:8080/{i}.png"))
        for i in range(40)
    ]
    shown.append(lines.filter(record("imgscraper.spiders.images", "host-unreachable", "http://dead.example:8080/p")))
    shown += [lines.filter(record("imgscraper.pipelines.images", "http-404", f"https://u@A.example/{n}")) for n in "abc"]
    shown += [lines.filter(record("imgscraper.pipelines.images", "not-an-image", "data:image/png;base64,AAAA"))]
    assert shown == [False] * 41 + [True, True, False, True]
    assert lines.filter(record("imgscraper.spiders.images", "http-404", "https://a.example/start", logging.ERROR))
    plain = logging.LogRecord("imgscraper.pipelines.images", logging.WARNING, __file__, 1, "Image skipped: %s", ("x",), None)
    assert lines.filter(plain)
    assert lines.summary() == [
        "40 images and 1 page failed as host-unreachable from dead.example:8080",
        "... and 1 more http-404 from a.example",
    ]
