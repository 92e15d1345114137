"""``python -m bench.render``: what ``-a render=yes`` costs, per page and in pages per minute.

Generates a site of JavaScript pages (each: 2 images in its HTML, 4 inserted
after a ``fetch()``, and 2 infinite-scroll batches of 2; every other page is
*busy* too: a slideshow swapping its ``src`` every 300 ms, forever, over 3
images only its script names, and an XHR poll every 200 ms with a new query
string each time, so its network is never quiet), serves it with nginx on
127.0.0.1, directly and through the latency proxy (+``--delay`` per
response), and crawls it at depth 1 with and without rendering. Prints, per
run: pages crawled, wall time, pages per minute, the time of each page
(median, 90th percentile and maximum, from the downloader taking it to its
response; then the same of the download handler's own time, which for a
rendered page is its time in the browser: see :mod:`bench.pagetimes`), images
stored (of those the pages show), CPU time and the peak memory (PSS) of the
crawl's whole process tree (the browser included).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from bench.measure import tree_pss_mb
from bench.servers import LatencyProxy, nginx

PROJECT_ROOT = Path(__file__).resolve().parent.parent

PAGE = """<!doctype html>
<html><head><meta charset=utf-8><title>{name}</title></head>
<body>
<h1>{name}</h1>
<img src="img/{name}-s0.jpg" width="64" height="48"><img src="img/{name}-s1.jpg" width="64" height="48">
<div id="gallery"></div>
<div id="feed"><div style="height:1500px"></div></div>
<script>
const add = (names) => {{ for (const n of names) {{
  const el = document.createElement("img"); el.src = "img/" + n + ".jpg"; el.width = 64; el.height = 48;
  document.getElementById("feed").append(el); }} }};
fetch("data/{name}.json").then((r) => r.json()).then((d) => add(d.gallery));
let batch = 0, busy = false;
window.addEventListener("scroll", async () => {{
  if (busy || batch >= 2 || innerHeight + scrollY < document.documentElement.scrollHeight - 100) return;
  busy = true; batch += 1;
  add((await (await fetch("data/{name}-" + batch + ".json")).json()).gallery);
  const more = document.createElement("div"); more.style.height = "1500px";
  document.getElementById("feed").append(more); busy = false;
}});
</script>{busy}
</body></html>
"""

BUSY = """
<img id="slide" src="img/{name}-s0.jpg" width="64" height="48">
<script>
const slides = ["{name}-c0", "{name}-c1", "{name}-c2", "{name}-s0"];
let shown = 0;
setInterval(() => {{ document.getElementById("slide").src = "img/" + slides[shown++ % slides.length] + ".jpg"; }}, 300);
setInterval(() => fetch("data/poll.json?t=" + Date.now()), 200);
</script>"""


def _jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 48), 40 + seed % 50).convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def generate(root: Path, pages: int) -> int:
    """Write the site under ``root``; returns the number of images its pages show
    (every other page is busy: :data:`BUSY`)."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "img").mkdir(parents=True)
    (root / "data").mkdir()
    images = 0

    def image(name: str) -> str:
        nonlocal images
        (root / "img" / f"{name}.jpg").write_bytes(_jpeg(images))
        images += 1
        return name

    names = [f"page-{n:03d}" for n in range(pages)]
    (root / "data" / "poll.json").write_text("{}")
    for n, name in enumerate(names):
        image(f"{name}-s0"), image(f"{name}-s1")
        (root / "data" / f"{name}.json").write_text(json.dumps({"gallery": [image(f"{name}-g{i}") for i in range(4)]}))
        for batch in (1, 2):
            (root / "data" / f"{name}-{batch}.json").write_text(
                json.dumps({"gallery": [image(f"{name}-b{batch}-{i}") for i in range(2)]}))
        busy = n % 2 == 1
        if busy:
            for i in range(3):
                image(f"{name}-c{i}")
        (root / f"{name}.html").write_text(PAGE.format(name=name, busy=BUSY.format(name=name) if busy else ""))
    links = "\n".join(f'<p><a href="{n}.html">{n}</a></p>' for n in names)
    (root / "index.html").write_text(f"<!doctype html><html><body>\n{links}\n</body></html>\n")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return images


def crawl(url: str, work: Path, render: bool) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    command = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url={url}", "-a", "depth=1",
               "-s", f"IMAGES_STORE={work / 'store'}", "-O", str(work / "items.jsonl"), "-s", "LOG_LEVEL=INFO",
               "-s", 'EXTENSIONS={"bench.pagetimes.PageTimes": 0}', "-s", f"BENCH_PAGE_TIMES_FILE={work / 'pages.jsonl'}"]
    if render:
        command += ["-a", "render=yes"]
    peak = 0.0
    with open(work / "crawl.log", "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_pss_mb(proc.pid))
            time.sleep(0.1)
        wall = time.monotonic() - started
    text = (work / "crawl.log").read_text(errors="replace")
    pages = int(m.group(1)) if (m := re.search(r"'imgscraper/pages': (\d+)", text)) else 0
    stored = int(m.group(1)) if (m := re.search(r"'imgscraper/images/downloaded': (\d+)", text)) else 0
    times_file = work / "pages.jsonl"
    times = [json.loads(line) for line in times_file.read_text().splitlines()] if times_file.exists() else []
    return {"render": render, "pages": pages, "wall": wall, "pages_per_min": pages / wall * 60, "images": stored,
            "page_wall": percentiles([t["wall"] for t in times]),
            "page_latency": percentiles([t["latency"] for t in times if t["latency"] is not None]),
            "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak,
            "exit": os.waitstatus_to_exitcode(status), "command": command}


def percentiles(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile and maximum of ``values`` (zeros if none)."""
    if len(values) < 2:
        values = (values or [0.0]) * 2
    return {"median": statistics.median(values), "p90": statistics.quantiles(values, n=10, method="inclusive")[-1], "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out" / "render")
    parser.add_argument("--pages", type=int, default=60, help="JavaScript pages linked from the start page")
    parser.add_argument("--delay", type=float, default=0.05, help="latency the proxy adds per response (s)")
    args = parser.parse_args()

    site = args.out / "site"
    images = generate(site, args.pages)
    print(f"{args.pages} pages + index ({args.pages // 2} busy), {images} images ({args.pages * 2} in the HTML)",
          flush=True)
    results = []
    with nginx(site, args.out / "nginx") as port, LatencyProxy(port, args.delay) as proxy:
        for label, base in (("loopback", f"http://127.0.0.1:{port}/"),
                            (f"+{args.delay * 1000:.0f} ms", f"http://127.0.0.1:{proxy.port}/")):
            for render in (False, True):
                run = crawl(base, args.out / "runs" / f"{label.strip('+ ')}-{'render' if render else 'static'}", render)
                run["network"] = label
                results.append(run)
                page, own = run["page_wall"], run["page_latency"]
                print(f"  {label:<9} render={'yes' if render else 'no ':<3}  pages {run['pages']:3d}  "
                      f"wall {run['wall']:6.2f} s  {run['pages_per_min']:6.0f} pages/min  "
                      f"per page: median {page['median']:5.2f} s  p90 {page['p90']:5.2f} s  max {page['max']:5.2f} s "
                      f"(handler: {own['median']:5.2f} / {own['p90']:5.2f} / {own['max']:5.2f} s)  "
                      f"images {run['images']:4d}/{images}  CPU {run['cpu']:6.2f} s  peak PSS {run['peak_mb']:5.0f} MB"
                      + ("" if run["exit"] == 0 else f"  EXIT {run['exit']}"), flush=True)
    (args.out / "render.json").write_text(json.dumps(results, indent=2))
    print(f"JSON: {args.out / 'render.json'}")


if __name__ == "__main__":
    main()
