"""Progress: a live display when stderr is a terminal (run under a real
pseudo-terminal here), a periodic stats line in the log when it is not."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time

import pytest

from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment, parse_stats
from tests.support.sitegen import serve_site

pytestmark = pytest.mark.crawl

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROGRESS_LINE = re.compile(
    r"Progress: (?P<pages>\d+) pages crawled, (?P<queued>\d+) queued; images (?P<found>\d+) found,"
    r" (?P<stored>\d+) stored, (?P<uptodate>\d+) up to date, (?P<skipped>\d+) skipped, (?P<failed>\d+) failed;"
    r" [0-9.]+ (B|KiB|MiB|GiB) stored; [0-9.]+ images/s$"
)


CONTROL = re.compile(r"\x1b\[(?P<args>[0-9;?]*)(?P<op>[A-Za-z])|(?P<char>[\r\n])")


def final_screen(output: str) -> list[str]:
    """The lines a terminal of unlimited height shows once ``output`` is written.

    Understands what rich's live display and the log use: carriage return,
    newline, erase line (``ESC[2K``), cursor up (``ESC[nA``); colours and
    cursor visibility are ignored.
    """
    lines, row, col, pos = [""], 0, 0, 0

    def write(text: str) -> None:
        nonlocal col
        line = lines[row].ljust(col)
        lines[row] = line[:col] + text + line[col + len(text):]
        col += len(text)

    for match in CONTROL.finditer(output):
        write(output[pos:match.start()])
        pos = match.end()
        if match["char"] == "\r":
            col = 0
        elif match["char"] == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif match["op"] == "K":
            lines[row] = ""
        elif match["op"] == "A":
            row = max(0, row - int(match["args"] or 1))
    write(output[pos:])
    return [line.rstrip() for line in lines]


def run_in_pty(args: list[str], timeout: float = 60, columns: int = 160) -> tuple[int, str]:
    """Run ``scrapy crawl images *args`` with stdin/stdout/stderr on a pseudo-terminal ``columns`` wide."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    env = crawl_environment({"COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"})
    proc = subprocess.Popen(
        crawl_command(args, log_level=None),
        cwd=PROJECT_ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        returncode = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def slow_site(tmp_path_factory):
    with serve_site(tmp_path_factory.mktemp("slow"), latency=0.1, other_site=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def terminal(slow_site, tmp_path_factory):
    store = tmp_path_factory.mktemp("pty") / "store"
    return run_in_pty(["-a", f"url={slow_site.url}", "-a", "depth=2", "-s", f"IMAGES_STORE={store}",
                       "-s", "LOG_LEVEL=INFO", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"])


def test_terminal_gets_a_live_display(terminal):
    returncode, output = terminal
    assert returncode == 0, output[-3000:]
    assert ANSI.search(output), "no terminal control sequences: nothing was drawn"
    text = ANSI.sub("", output)
    frames = re.findall(r"images (\d+)/(\d+): (\d+) stored, (\d+) up to date, (\d+) skipped, (\d+) failed", text)
    assert frames, "no progress display in the terminal output"
    done = [int(f[0]) for f in frames]
    assert done == sorted(done), "images done went backwards"
    assert len(set(done)) >= 3, f"the display did not move: {sorted(set(done))}"
    assert re.search(r"pages \d+ crawled, \d+ queued", text)
    assert "images/s" in text


def test_terminal_display_refreshes_twice_a_second(terminal):
    _, output = terminal
    text = ANSI.sub("", output)
    frames = len(re.findall(r"elapsed \d+:\d\d", text))
    duration = parse_stats(text)["imgscraper/duration_seconds"]
    assert duration > 1.5, "crawl too short to measure the refresh rate"
    assert frames >= 2 * (duration - 1), f"{frames} frames in {duration:.1f} s"


def test_terminal_log_lines_stay_readable(terminal):
    """Log lines are printed whole, above the display, and the display is gone at the end."""
    _, output = terminal
    lines = final_screen(output)
    for needle in ("[scrapy.core.engine] INFO: Spider opened", "WARNING: Image failed (http-404)",
                   "[scrapy.core.engine] INFO: Closing spider (finished)"):
        matching = [line for line in lines if needle in line]
        assert len(matching) == 1, f"{needle!r}: {matching}"
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[", matching[0]), f"log line mangled: {matching[0]!r}"
    summary = lines.index(next(line for line in lines if "Crawl summary (finished)" in line))
    assert not any("elapsed" in line for line in lines[summary:]), "display drawn after the crawl ended"
    assert lines[summary + 1].split()[:2] == ["pages", "crawled"]


def test_log_lines_are_never_wrapped_at_the_terminal_width(slow_site, tmp_path):
    """On a terminal narrower than the log lines, each stays one line (a URL is not split): the
    terminal folds it on screen, and a copy of it is whole."""
    missing = f"{slow_site.url}missing-{'x' * 60}.png"
    (slow_site.root / "wide.html").write_text(f'<img src="{missing}">')
    returncode, output = run_in_pty(["-a", f"url={slow_site.url}wide.html", "-s", f"IMAGES_STORE={tmp_path}"],
                                    columns=40)
    assert returncode == 0, output[-3000:]
    lines = final_screen(output)
    failure = [line for line in lines if "Image failed (http-404)" in line]
    assert len(failure) == 1 and failure[0].endswith(missing), lines
    for needle in ("[scrapy.core.engine] INFO: Spider opened", "[scrapy.core.engine] INFO: Closing spider (finished)"):
        assert [line for line in lines if line.endswith(needle)], f"{needle!r} not on one line: {lines}"


def test_no_display_without_a_terminal_but_a_stats_line(slow_site, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={slow_site.url}", "-a", "depth=2", "-s", "IMGSCRAPER_PROGRESS_INTERVAL=0.3",
                        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert not ANSI.search(result.output), "terminal control sequences in a non-terminal output"
    messages = [line.split("INFO: ", 1)[1] for line in result.stderr.splitlines() if "[imgscraper.extensions.progress]" in line]
    assert messages, "no progress line"
    for message in messages:
        assert PROGRESS_LINE.match(message), message
    duration = result.stats["imgscraper/duration_seconds"]
    assert duration / 0.3 * 0.5 <= len(messages) <= duration / 0.3 + 1, f"{len(messages)} lines in {duration} s"
    stored = [int(PROGRESS_LINE.match(m)["stored"]) for m in messages]
    assert stored == sorted(stored) and stored[-1] <= sum(1 for i in result.items if i["status"] == "downloaded")


def test_interval_zero_means_no_stats_line(site_server_module, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={site_server_module.url}", "-s", "IMGSCRAPER_PROGRESS_INTERVAL=0"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert "[imgscraper.extensions.progress]" not in result.stderr


def test_progress_off_draws_nothing_on_a_terminal(site_server_module, tmp_path):
    returncode, output = run_in_pty(["-a", f"url={site_server_module.url}", "-s", f"IMAGES_STORE={tmp_path}",
                                     "-s", "IMGSCRAPER_PROGRESS=false", "-s", "IMGSCRAPER_PROGRESS_INTERVAL=0"])
    assert returncode == 0, output[-2000:]
    assert not re.search(r"elapsed \d+:\d\d|\x1b\[2K", output) and "Progress:" not in output
    assert "Crawl summary (finished)" in output
