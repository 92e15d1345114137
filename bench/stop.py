"""How promptly a crawl stops: Ctrl-C (SIGINT) during a crawl of the large bench site
(3,000 images) with the proxy adding latency to every response, then the resume.

    python -m bench.stop [--project DIR] [--delay 0.1] [--after 300] [--signal INT|TERM]

Prints the time from the signal to the exit, the images stored at the signal and at
the exit, and, with --resume, how long the same command with the same JOBDIR took to
store the rest. ``--project`` runs another checkout's code (e.g. main, for a before and after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.servers import LatencyProxy, nginx
from bench.site import LARGE, ensure_site

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def stored(store: Path) -> int:
    folder = store / "full"
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".tmp-")) if folder.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-out")
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT, help="the checkout whose crawler runs")
    parser.add_argument("--delay", type=float, default=0.1, help="latency added per response (s)")
    parser.add_argument("--after", type=int, default=300, help="images stored before the signal")
    parser.add_argument("--signal", choices=("INT", "TERM"), default="INT")
    parser.add_argument("--resume", action="store_true", help="then run the same command again")
    parser.add_argument("--setting", "-s", action="append", default=[], help="extra -s NAME=VALUE for the crawl")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sites = args.out / "sites"
    manifest = ensure_site(sites / "large", LARGE, "/large/")
    (sites / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    work = args.out / "stop"
    shutil.rmtree(work, ignore_errors=True)
    store, job, log = work / "store", work / "job", work / "crawl.log"
    work.mkdir(parents=True)
    with nginx(sites, args.out / "nginx-stop") as port, LatencyProxy(port, args.delay) as proxy:
        cmd = [
            sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url=http://127.0.0.1:{proxy.port}/large/",
            "-a", "depth=2", "-s", f"IMAGES_STORE={store}", "-s", f"JOBDIR={job}", "-s", "IMGSCRAPER_PROGRESS=False",
        ]
        for setting in args.setting:
            cmd += ["-s", setting]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        with log.open("w") as err:
            proc = subprocess.Popen(cmd, cwd=args.project, env=env, stdout=subprocess.DEVNULL, stderr=err)
            while stored(store) < args.after:
                if proc.poll() is not None:
                    sys.exit(f"the crawl ended before {args.after} images were stored: see {log}")
                time.sleep(0.01)
            at_signal = stored(store)
            signalled = time.monotonic()
            proc.send_signal(getattr(signal, f"SIG{args.signal}"))
            proc.wait()
            took = time.monotonic() - signalled
        print(f"SIG{args.signal} after {at_signal} images: exit {proc.returncode} {took:.2f} s later; "
              f"{stored(store) - at_signal} more images stored meanwhile ({args.project})", flush=True)
        if args.resume:
            started = time.monotonic()
            with log.open("a") as err:
                rc = subprocess.run(cmd, cwd=args.project, env=env, stdout=subprocess.DEVNULL, stderr=err).returncode
            print(f"resume: exit {rc} in {time.monotonic() - started:.1f} s; {stored(store)} of "
                  f"{len(manifest['images'])} images stored", flush=True)


if __name__ == "__main__":
    main()
