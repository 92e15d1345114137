"""``python -m bench.dead_host [-s NAME=VALUE ...]``: what a dead image host costs a crawl.

Serves a page on 127.0.0.1 whose 40 images are on 127.0.0.3, a host that
accepts connections and never answers (a dying CDN, a firewalled mirror),
crawls it with ``DOWNLOAD_TIMEOUT=3`` (and the ``-s`` settings given), and
prints the crawl's time, its items' reasons and how many connections the dead
host accepted. Run it from another checkout's root to compare (``cd OTHER &&
python -m bench.dead_host``, with this file copied there).
"""

from __future__ import annotations

import collections
import http.server
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

IMAGES = 40
TIMEOUT = 3


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def hold_connections(listener: socket.socket, held: list[socket.socket]) -> None:
    """Accept every connection and never answer."""
    while True:
        held.append(listener.accept()[0])


def main(settings: list[str]) -> None:
    hole = socket.create_server(("127.0.0.3", 0), backlog=512)
    held: list[socket.socket] = []
    threading.Thread(target=hold_connections, args=(hole, held), daemon=True).start()
    dead = f"http://127.0.0.3:{hole.getsockname()[1]}"
    root = Path(tempfile.mkdtemp(prefix="dead-host-"))
    (root / "index.html").write_text("".join(f'<img src="{dead}/img/{i}.png">' for i in range(IMAGES)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    command = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url={url}", "-s", f"DOWNLOAD_TIMEOUT={TIMEOUT}",
               "-s", f"IMAGES_STORE={root / 'store'}", "-O", str(root / "items.jsonl"),
               *[arg for setting in settings for arg in ("-s", setting)]]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    elapsed = re.search(r"'elapsed_time_seconds': ([\d.]+)", done.stderr)
    items = [json.loads(line) for line in (root / "items.jsonl").read_text().splitlines() if line]
    reasons = collections.Counter(item.get("reason") or item.get("status") for item in items)
    print(f"exit status {done.returncode}, {wall:.1f} s wall, crawl {float(elapsed.group(1)) if elapsed else 0:.1f} s, "
          f"{len(held)} connections to the dead host, items: {dict(reasons)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main([value for flag, value in zip(args[::2], args[1::2]) if flag == "-s"])
