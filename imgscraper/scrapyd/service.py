"""Whether Scrapyd answers, checked before talking to it.

``python -m imgscraper.scrapyd.service`` exits 0 when Scrapyd at ``$SCRAPYD_URL``
answers with the credentials of ``SCRAPYD_USERNAME`` and ``SCRAPYD_PASSWORD``;
otherwise it prints one line saying what is wrong and what to do (``make scrapyd``
starts it) and exits 1. ``make deploy`` and ``make schedule`` run it first, so that
a Scrapyd that is down is said in one line rather than by a traceback of the client.
"""

from __future__ import annotations

import os
import sys

import requests

__all__ = ["DEFAULT_SCRAPYD_URL", "scrapyd_auth", "scrapyd_problem", "scrapyd_url", "unreachable"]

DEFAULT_SCRAPYD_URL = "http://127.0.0.1:6800"


def scrapyd_url(env: dict[str, str] | None = None) -> str:
    """``$SCRAPYD_URL``, else Scrapyd's default, without a trailing ``/``."""
    env = os.environ if env is None else env
    return (env.get("SCRAPYD_URL") or DEFAULT_SCRAPYD_URL).rstrip("/")


def scrapyd_auth(env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """The credentials of ``SCRAPYD_USERNAME`` and ``SCRAPYD_PASSWORD``, or None."""
    env = os.environ if env is None else env
    username, password = env.get("SCRAPYD_USERNAME"), env.get("SCRAPYD_PASSWORD")
    return (username, password) if username and password else None


def unreachable(url: str) -> str:
    """The line saying that nothing answers at ``url``, with what to do."""
    return f"Scrapyd does not answer at {url}: start it with `make scrapyd` (or set SCRAPYD_URL to where it runs)"


def scrapyd_problem(url: str, auth: tuple[str, str] | None, timeout: float = 5) -> str | None:
    """Why Scrapyd at ``url`` cannot take requests, in one line with what to do; None when it answers."""
    try:
        response = requests.get(f"{url}/daemonstatus.json", auth=auth, timeout=timeout)
    except requests.RequestException:
        return unreachable(url)
    if response.status_code == 401:
        return (f"Scrapyd at {url} refused the credentials: set SCRAPYD_USERNAME and SCRAPYD_PASSWORD to those"
                " it was started with")
    try:
        ok = response.ok and response.json().get("status") == "ok"
    except ValueError:
        ok = False
    if not ok:
        return f"{url} is not a Scrapyd: daemonstatus.json answered HTTP {response.status_code}"
    return None


def main() -> int:
    problem = scrapyd_problem(scrapyd_url(), scrapyd_auth())
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
