"""What a test needs that a newcomer's machine may not have: programs, and the markers that keep
such tests out of ``make test-fast``.

A helper that starts a crawl, a browser or a service calls :func:`require_marker`, so that a test
not marked for it fails at once instead of slowing the quick loop down; ``tests/conftest.py`` tells
this module the markers of each test before its set-up. Outside pytest (``make faults``) nothing
is refused.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterable

import pytest

__all__ = ["in_ci", "require_marker", "require_program", "set_running_test_markers"]

_running: frozenset[str] | None = None


def set_running_test_markers(names: Iterable[str]) -> None:
    global _running
    _running = frozenset(names)


def require_marker(name: str, what: str) -> None:
    """Raise ``RuntimeError`` unless the running test (if any) is marked ``name``; ``what`` is
    what the caller starts, for the message."""
    if _running is not None and name not in _running:
        raise RuntimeError(
            f"this test starts {what}: mark it with @pytest.mark.{name} (see the Tests section of "
            "docs/architecture.md)"
        )


def in_ci() -> bool:
    """Whether the tests run in CI (``CI`` set, as CI services set it, to anything but a no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_program(program: str) -> str:
    """The full path of ``program``; skip the test when it is not installed, or fail it in CI,
    which must run every test (``make test`` installs the programs)."""
    found = shutil.which(program)
    if found is None:
        message = f"{program} is not installed (make test installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found
