"""Run one command and measure it: wall time, CPU time, peak RSS."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Run", "run_measured", "store_stats", "tree_pss_mb"]


@dataclass
class Run:
    """What one measured run did; ``images``/``bytes`` count files stored."""

    tool: str
    scenario: str
    wall: float
    cpu: float
    peak_rss_mb: float
    images: int
    bytes: int
    returncode: int
    command: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall if self.wall else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu / self.images if self.images else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "images_per_s": self.images_per_s, "mb_per_s": self.mb_per_s,
                "cpu_ms_per_image": self.cpu_ms_per_image}


def store_stats(directory: Path) -> tuple[int, int]:
    """(number of non-empty files, their total size) under ``directory``."""
    count = size = 0
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            if name.startswith(".tmp-"):
                continue
            length = os.path.getsize(os.path.join(dirpath, name))
            if length:
                count += 1
                size += length
    return count, size


def run_measured(command: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None,
                 timeout: float = 900, tree: bool = False) -> tuple[float, float, float, int]:
    """Run ``command`` (output to ``log``); return (wall s, CPU s, peak RSS MB, exit status).

    CPU and peak RSS come from ``wait4()`` for this child (and what it
    waited for), not from the bench process. ``wait4()`` gives the largest
    single process: with ``tree`` (a command that starts processes of its
    own), the memory is the peak of the whole process tree's PSS, sampled
    every 0.1 s, if that is larger.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    full_env.update(env or {})
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        tree_peak, next_sample = 0.0, started
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if tree and time.monotonic() >= next_sample:
                    tree_peak = max(tree_peak, tree_pss_mb(proc.pid))
                    next_sample = time.monotonic() + 0.1
                if time.monotonic() > deadline:
                    proc.kill()
                time.sleep(0.005)
        except BaseException:  # the bench was interrupted: leave nothing running
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, max(usage.ru_maxrss / 1024, tree_peak), proc.returncode


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and all its descendants (MB): shared
    pages (Chromium's processes share many) are split between their users."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total_kb / 1000

