"""``make faults`` (``python -m tests.support.faults_report``): run every fault scenario of the test suite ``--tries`` times
and print one table row per fault:

    fault | tries | crawls completed | good images stored / expected | bad accounted / expected | junk files left

* crawls completed: runs that ended as they must (``finished``; for a store
  fault, stopped with its finish reason; for an interruption, the resumed
  crawl finished);
* good images: images that must be stored and were, byte-exact;
* bad accounted: bad images (or pages) that ended with the expected status
  and reason in the items and stats;
* junk files: anything in the store that is not a complete image, its
  record or its gallery (temporary, partial, foreign files).

It uses the same sites and servers as ``tests/e2e/test_faults.py``,
``tests/pipelines/test_store_faults.py`` and ``tests/e2e/test_resume.py``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from tests.support.crawl import run_crawl
from tests.support.faultsite import CRAWL_SETTINGS, FaultSite
from tests.support.httpserver import HTTPTestServer

STORE_NAME = re.compile(r"^full/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[a-z]+$")


@dataclass
class Row:
    fault: str
    tries: int = 0
    completed: int = 0
    good: int = 0
    good_expected: int = 0
    bad: int = 0
    bad_expected: int = 0
    junk: int = 0
    notes: set[str] = field(default_factory=set)

    def cells(self) -> list[str]:
        good = f"{self.good}/{self.good_expected}" if self.good_expected else "-"
        bad = f"{self.bad}/{self.bad_expected}" if self.bad_expected else "-"
        return [self.fault, str(self.tries), f"{self.completed}/{self.tries}", good, bad, str(self.junk)]


def junk_files(store: Path) -> int:
    if not store.exists():
        return 0
    return sum(
        1 for p in store.rglob("*")
        if p.is_file() and not p.relative_to(store).as_posix().startswith(".imgscraper/")
        and p.relative_to(store).as_posix() != "index.html" and not STORE_NAME.match(p.relative_to(store).as_posix())
    )


def settings_args(**extra: str) -> list[str]:
    return [a for k, v in {**CRAWL_SETTINGS, **extra}.items() for a in ("-s", f"{k}={v}")]


def fault_crawl(rows: dict[str, Row], base: Path) -> None:
    """The main fault crawl: every image fault, page fault, URL spelling, safety case."""
    root = Path(tempfile.mkdtemp(dir=base))
    with HTTPTestServer(root / "www") as server:
        site = FaultSite(server, root / "www").install()
        result = run_crawl(["-a", f"url={site.url}", "-a", "depth=1", *settings_args()], out_dir=root / "out",
                           servers=[server])
        requests = result.requests
    stats = result.stats
    completed = result.returncode == 0 and stats.get("finish_reason") == "finished"
    junk = junk_files(result.store)
    items = result.by_url()

    def row(name: str) -> Row:
        r = rows.setdefault(name, Row(name))
        r.tries += 1
        r.completed += completed
        r.junk += junk
        return r

    for fault in site.faults:
        r = row(f"{fault.group}: {fault.name}" if fault.group != "image" else fault.name)
        item = items.get(fault.url, {})
        tries = len([q for q in requests if unquote(q.url_path) == unquote(fault.path)])
        tries_ok = fault.tries is None or tries == fault.tries
        if fault.status == "downloaded":
            r.good_expected += 1
            path = result.store / item.get("path", "-")
            r.good += item.get("status") == "downloaded" and path.is_file() and path.read_bytes() == fault.body and tries_ok
        else:
            r.bad_expected += 1
            r.bad += (item.get("status"), item.get("reason")) == (fault.status, fault.reason) and not item.get("path") and tries_ok
    r = row("page: gigantic page, gzip bomb page")
    r.bad_expected += 2
    r.bad += min(2, stats.get("imgscraper/pages_failed/too-large", 0))
    r = row("safety: crafted URLs (.., %2e%2e, NUL, 2400 chars)")
    crafted = [u for u in items if "/s/" in u or "escape" in u]
    r.good_expected += len(site.crafted)
    r.good += sum(1 for u in crafted if STORE_NAME.match(items[u]["path"]) and (result.store / items[u]["path"]).is_file())
    r = row("safety: file:, ftp:, gopher:, javascript: images")
    r.bad_expected += 4
    r.bad += sum(stats.get(f"imgscraper/urls_ignored/{s}", 0) == 1 for s in ("file", "ftp", "gopher", "javascript"))
    r = row("safety: robots.txt disallowed image")
    r.bad_expected += 1
    private = items.get(site.url + "private/secret.png", {})
    r.bad += private.get("reason") == "robots-txt" and not [q for q in requests if q.url_path.startswith("/private/")]


def trap_crawls(rows: dict[str, Row], base: Path) -> None:
    root = Path(tempfile.mkdtemp(dir=base))
    with HTTPTestServer(root / "www") as server:
        site = FaultSite(server, root / "www").install()
        for name, args, pages in [
            ("link trap bounded by depth=3", ["-a", "depth=3", *settings_args()], 10),
            ("link trap bounded by IMGSCRAPER_MAX_PAGES=7", ["-a", "depth=1000", *settings_args(IMGSCRAPER_MAX_PAGES="7")], 7),
        ]:
            site.reset()
            result = run_crawl(["-a", f"url={site.url}cal/0.html", *args], out_dir=root / name.split()[-1],
                               servers=[server])
            crawled = {q.url_path for q in result.requests if q.url_path.startswith("/cal/") and q.url_path.endswith(".html")}
            r = rows.setdefault(name, Row(name))
            r.tries += 1
            r.completed += result.returncode == 0 and len(crawled) == pages
            r.good_expected += pages
            r.good += min(pages, len([i for i in result.items if i["status"] == "downloaded"]))
            r.junk += junk_files(result.store)


def store_fault_crawls(rows: dict[str, Row], base: Path) -> None:
    from tests.pipelines.test_store_faults import StoreFaultSite
    from tests.support.mounts import read_only_switch, small_tmpfs

    for name, reason in (("store fills up mid-crawl", "store_full"), ("store turns read-only mid-crawl", "store_unwritable")):
        root = Path(tempfile.mkdtemp(dir=base))
        r = rows.setdefault(name, Row(name))
        r.tries += 1
        with HTTPTestServer(root / "www") as server:
            site = StoreFaultSite(server)
            store = root / "store"

            def crawl(page: str, out: str):
                return run_crawl(["-a", f"url={server.url}{page}", "-s", "CONCURRENT_REQUESTS=2"],
                                 store=store, out_dir=root / out)

            def check(result, before):
                stored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (store / "full").glob("[!.]*")}
                reported = [i for i in result.items if i["status"] == "downloaded"]
                r.completed += result.returncode == 1 and result.stats.get("finish_reason") == reason
                r.good_expected += len(before) + len(reported)
                r.good += sum(stored.get(k) == v for k, v in before.items())
                r.good += sum(1 for i in reported if stored.get(i["path"].removeprefix("full/")) in site.served)

            if reason == "store_full":
                with small_tmpfs(store, "1m"):
                    crawl("small.html", "out1")
                    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (store / "full").iterdir()}
                    check(crawl("big.html", "out2"), before)
                    r.junk += junk_files(store)
            else:
                crawl("small.html", "out1")
                before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (store / "full").iterdir()}
                with read_only_switch(store / "full") as switch:
                    def flip(n: int) -> None:
                        if n >= 10 and not switch.read_only:
                            deadline = time.monotonic() + 10
                            while len(list((store / "full").glob("[!.]*"))) < 4 and time.monotonic() < deadline:
                                time.sleep(0.01)
                            switch.make_read_only()
                    site.on_big_request = flip
                    check(crawl("big.html", "out2"), before)
                crawl("small.html", "out3")  # writable again: cleans up after the interrupted writes
                r.junk += junk_files(store)


def idn_crawl(rows: dict[str, Row], base: Path) -> None:
    """IDN hosts through an HTTP proxy (no DNS here): requested as punycode."""
    from tests.support.images import png

    root = Path(tempfile.mkdtemp(dir=base))
    image, other = png(4242), png(4243)
    with HTTPTestServer(root / "www") as proxy:
        proxy.add_handler("/index.html", lambda h: h.send_body(
            '<img src="/b\u00fccher.png"><img src="http://\u6e2c\u8a66.example/x.png">', content_type="text/html") or True)
        proxy.add_handler("/b%C3%BCcher.png", lambda h: h.send_body(image, content_type="image/png") or True)
        proxy.add_handler("/x.png", lambda h: h.send_body(other, content_type="image/png") or True)
        result = run_crawl(["-a", "url=http://b\u00fccher.example/index.html", *settings_args()],
                           out_dir=root / "out", env={"http_proxy": proxy.url}, servers=[proxy])
    hosts = {q.header("Host") for q in result.requests}
    r = rows.setdefault("IDN hosts (via a proxy: punycode on the wire)", Row("IDN hosts (via a proxy: punycode on the wire)"))
    r.tries += 1
    r.completed += result.returncode == 0 and {"xn--bcher-kva.example", "xn--g6w251d.example"} <= hosts
    r.good_expected += 2
    r.good += len([i for i in result.items if i["status"] == "downloaded"])
    r.junk += junk_files(result.store)


def interruption_crawls(rows: dict[str, Row], base: Path) -> None:
    from tests.e2e.test_resume import Job, TreeSite, interrupt

    for name, signals_ in (("Ctrl-C once, then resume", [signal.SIGINT]),
                           ("Ctrl-C twice, then resume", [signal.SIGINT, signal.SIGINT]),
                           ("kill -9, then resume with same JOBDIR", [signal.SIGKILL])):
        root = Path(tempfile.mkdtemp(dir=base))
        r = rows.setdefault(name, Row(name))
        r.tries += 1
        with HTTPTestServer(root / "www", latency=0.03) as server:
            site = TreeSite(server)
            job = Job(site, root)
            proc = job.start()
            job.wait_for_files(proc, 30)
            interrupt(proc, signals_)
            # Right after the interruption: a partial image is junk (a temporary file is
            # not yet: the resumed crawl must remove it, and junk is counted after it).
            before = {n: hashlib.sha256(b).hexdigest() for n, b in job.files().items() if not n.startswith(".tmp")}
            before_paths = {site.sha_to_path[sha] for sha in before.values() if sha in site.sha_to_path}
            r.junk += sum(sha not in site.sha_to_path for sha in before.values())
            server.log.clear()
            result = job.run()
            again = set(site.image_requests()) & before_paths
            files = job.files()
            stored = {site.sha_to_path.get(hashlib.sha256(b).hexdigest()) for n, b in files.items()} - {None}
            r.completed += result.returncode == 0 and not again
            r.good_expected += len(site.images)
            r.good += len(stored & set(site.images))
            r.junk += junk_files(job.store)
            if again:
                r.notes.add(f"{len(again)} stored images fetched again")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, Row] = collections.OrderedDict()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        base = Path(tmp)
        for _ in range(args.tries):
            for scenario in (fault_crawl, idn_crawl, trap_crawls, store_fault_crawls, interruption_crawls):
                scenario(rows, base)
    header = ["fault", "tries", "crawls completed", "good images stored", "bad accounted", "junk files left"]
    table = [header] + [row.cells() for row in rows.values()]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in table[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
    notes = [f"{row.fault}: {note}" for row in rows.values() for note in sorted(row.notes)]
    print("\n".join(notes))
    perfect = all(r.completed == r.tries and r.good == r.good_expected and r.bad == r.bad_expected and not r.junk
                  for r in rows.values())
    print("all completed, all stored, all accounted, zero junk" if perfect else "NOT all as expected")
    return 0 if perfect else 1


if __name__ == "__main__":
    sys.exit(main())
