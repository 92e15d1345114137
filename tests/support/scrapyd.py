"""Scrapyd as the README runs it, ``make scrapyd``, for the tests of ``make scrapyd``, ``make deploy``
and ``make schedule``. It refuses to start in a test not marked ``services``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.crawl import PROJECT_ROOT
from tests.support.needs import require_marker

__all__ = ["Scrapyd", "make"]


def make(target: str, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``make target *args`` in the project root, its output captured."""
    return subprocess.run(
        ["make", "--no-print-directory", target, *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )


@dataclass
class Scrapyd:
    """Scrapyd started by ``make scrapyd`` with ``env`` (its port, home and credentials); its
    output goes to ``scrapyd.out`` next to ``home``."""

    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        return self.env["SCRAPYD_USERNAME"], self.env["SCRAPYD_PASSWORD"]

    def start(self) -> None:
        require_marker("services", "Scrapyd")
        out = open(self.home.parent / "scrapyd.out", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "scrapyd"], cwd=PROJECT_ROOT, env=self.env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make scrapyd exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/daemonstatus.json", auth=self.auth, timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"Scrapyd did not answer within 30 s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return (self.home.parent / "scrapyd.out").read_text(errors="replace")

    def api(self, name: str, method: str = "GET", **params) -> dict:
        response = requests.request(
            method, f"{self.url}/{name}.json", auth=self.auth, timeout=10,
            **({"params": params} if method == "GET" else {"data": params}),
        )
        response.raise_for_status()
        return response.json()

    def wait_finished(self, job: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.api("listjobs", project="imgscraper")
            for finished in jobs["finished"]:
                if finished["id"] == job:
                    return finished
            time.sleep(0.25)
        raise AssertionError(f"job {job} not finished after {timeout} s: {jobs}")
