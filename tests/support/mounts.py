"""Real file-system faults for tests: a tiny tmpfs (fills up) and a bind
mount that can be switched to read-only mid-crawl. Both need root and
``mount``; they unmount themselves.

Where mounting is not possible the tests using them skip, except in CI
(``CI=true``) where they fail.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

__all__ = ["ReadOnlySwitch", "read_only_switch", "small_tmpfs"]


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        message = f"mount {' '.join(args)} failed: {proc.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _umount(path: Path) -> None:
    """Unmount everything mounted on ``path`` (lazily if busy)."""
    for _ in range(10):
        if subprocess.run(["mountpoint", "-q", str(path)]).returncode != 0:
            return
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"1m"``) mounted on ``path`` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


class ReadOnlySwitch:
    """:meth:`make_read_only` bind-mounts ``path`` read-only onto itself.

    Remounting a mount that has files open for writing fails (EBUSY), so
    the switch adds a fresh read-only mount on top instead: files open
    before keep working, every new write through ``path`` gets EROFS.
    """

    def __init__(self, path: Path):
        self.path = path
        self.read_only = False
        self._lock = threading.Lock()

    def make_read_only(self) -> None:
        with self._lock:
            if self.read_only:
                return
            # One command: util-linux sets up the read-only bind atomically, so a
            # file opened for writing in between cannot make it fail with EBUSY.
            subprocess.run(["mount", "--bind", "-o", "ro", str(self.path), str(self.path)], check=True, capture_output=True)
            self.read_only = True


@contextlib.contextmanager
def read_only_switch(path: Path) -> Iterator[ReadOnlySwitch]:
    """A :class:`ReadOnlySwitch` for ``path``, unmounted after the block."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(path), str(path))  # can we mount at all?
    _umount(path)
    switch = ReadOnlySwitch(path)
    try:
        yield switch
    finally:
        if switch.read_only:
            _umount(path)
