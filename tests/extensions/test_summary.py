"""The closing summary: a table at the end of the log whose numbers match
what the crawl produced (items, stored files) and Scrapy's stats."""

from __future__ import annotations

import collections
import re

import pytest

from imgscraper.extensions.summary import CrawlCounts, format_bytes, summary_table, render_plain



def parse_summary(stderr: str) -> tuple[str, dict[str, str], dict[str, dict[str, int]]]:
    """(finish reason, rows, reasons by status) of the summary in ``stderr``; it must end the log."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if "Crawl summary (" in line]
    assert len(starts) == 1, f"{len(starts)} summaries in the log"
    reason = re.search(r"Crawl summary \((\w+)\):", lines[starts[0]]).group(1)
    rows: dict[str, str] = {}
    reasons: dict[str, dict[str, int]] = collections.defaultdict(dict)
    status = ""
    for line in lines[starts[0] + 1:]:
        if re.match(r"^\d{4}-\d\d-\d\d ", line):  # the next log line: the gallery's
            break
        if re.match(r"^  \S", line):
            label, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            rows[label] = value
            status = label
        elif re.match(r"^\s{3,}\S", line):
            name, n = line.split()
            reasons[status][name] = int(n)
        else:
            raise AssertionError(f"unexpected line after the summary: {line!r}")
    return reason, rows, reasons


@pytest.fixture(scope="module")
def srv(site_server_module):
    return site_server_module


@pytest.fixture(scope="module")
def crawl(srv, run_crawl):
    return run_crawl(["-a", f"url={srv.url}", "-a", "depth=2"])


def test_summary_matches_items_and_store(crawl):
    assert crawl.returncode == 0, crawl.tail()
    reason, rows, reasons = parse_summary(crawl.stderr)
    assert reason == "finished"
    by_status = collections.Counter(item["status"] for item in crawl.items)
    assert int(rows["images found"]) == len(crawl.items) > 0
    assert int(rows["stored"]) == by_status["downloaded"] > 0
    assert int(rows["up to date"]) == by_status["uptodate"]
    for status in ("skipped", "failed"):
        assert int(rows[status]) == by_status[status] > 0
        want = collections.Counter(i["reason"] for i in crawl.items if i["status"] == status)
        assert reasons[status] == dict(want)
    stored = sum(p.stat().st_size for p in crawl.stored_files())
    assert rows["bytes stored"] == format_bytes(stored)
    pages = {item["page"] for item in crawl.items}
    assert int(rows["pages crawled"]) >= len(pages)


def test_summary_numbers_are_in_stats(crawl):
    _, rows, _ = parse_summary(crawl.stderr)
    duration = crawl.stats.get("imgscraper/duration_seconds")
    rate = crawl.stats.get("imgscraper/images_per_second")
    assert duration is not None and 0 < duration < crawl.duration
    assert rows["duration"] == f"{duration:.1f} s"
    done = sum(1 for i in crawl.items if i["status"] != "listed")
    assert rate == pytest.approx(done / duration, rel=0.01)
    assert crawl.stats.get("imgscraper/images/found") == len(crawl.items)


def test_summary_after_uptodate_rerun(srv, run_crawl, crawl, tmp_path):
    second = run_crawl(["-a", f"url={srv.url}", "-a", "depth=2"], store=crawl.store, out_dir=tmp_path)
    _, rows, _ = parse_summary(second.stderr)
    assert int(rows["stored"]) == 0
    assert int(rows["up to date"]) == sum(1 for i in second.items if i["status"] == "uptodate") > 0
    assert rows["bytes stored"] == "0 B"


def test_listing_summary_counts_what_was_listed(srv, run_crawl, tmp_path):
    """-a download=no stores nothing: the table counts the images listed (and those the URL filters
    skipped), not zeros for stored and up to date."""
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=1", "-a", "download=no", "-a", r"image_deny=\.gif"],
                       out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    _, rows, reasons = parse_summary(result.stderr)
    by_status = collections.Counter(item["status"] for item in result.items)
    assert int(rows["images found"]) == len(result.items)
    assert int(rows["listed"]) == by_status["listed"] > 0
    assert int(rows["skipped"]) == by_status["skipped"] > 0 and reasons["skipped"] == {"filtered": by_status["skipped"]}
    assert not {"stored", "up to date", "failed", "bytes stored"} & set(rows), rows
    duration = result.stats["imgscraper/duration_seconds"]
    assert result.stats["imgscraper/images_per_second"] == pytest.approx(by_status["listed"] / duration, rel=0.01)


def test_no_summary_when_the_crawl_never_started(run_crawl, tmp_path):
    result = run_crawl(["-a", "url=ftp://x"], out_dir=tmp_path)
    assert result.returncode == 1
    assert "Crawl summary" not in result.stderr


def test_table_lists_reasons_under_their_status():
    counts = CrawlCounts.from_stats({
        "imgscraper/images/failed": 3, "imgscraper/images/failed/http-404": 2,
        "imgscraper/images/failed/timeout": 1, "imgscraper/bytes_stored": 1536,
    })
    text = render_plain(summary_table(counts, 2.0))
    lines = text.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.split()[:1] == ["failed"])
    assert lines[failed + 1].split() == ["http-404", "2"]
    assert lines[failed + 2].split() == ["timeout", "1"]
    assert "1.5 KiB" in text and "1.5" in lines[-1]


def test_table_lists_failed_pages_only_when_some_failed():
    ok = render_plain(summary_table(CrawlCounts.from_stats({"imgscraper/pages": 3}), 1.0))
    assert "pages failed" not in ok
    counts = CrawlCounts.from_stats({"imgscraper/pages": 3, "imgscraper/pages_failed/http-404": 2,
                                     "imgscraper/pages_failed/timeout": 1})
    lines = render_plain(summary_table(counts, 1.0)).splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith("pages failed"))
    assert lines[row].split()[-1] == "3"
    assert [lines[row + 1].split(), lines[row + 2].split()] == [["http-404", "2"], ["timeout", "1"]]


def test_originals_and_a_limit_that_stopped_the_crawl_have_rows():
    stats = {"imgscraper/images/found": 12, "imgscraper/images/downloaded": 5, "imgscraper/originals/stored": 4,
             "imgscraper/originals/fallback": 1, "imgscraper/max_images_reached": 5}
    text = render_plain(summary_table(CrawlCounts.from_stats(stats), 2.0))
    assert re.search(r"originals stored +4\n +thumbnails instead +1\n", text)
    assert re.search(r"stopped at +max_images +5\n", text)
    assert "originals" not in render_plain(summary_table(CrawlCounts.from_stats({"imgscraper/images/found": 1}), 1.0))
