"""``srcset`` attributes: the WHATWG parsing algorithm, and the choice of the candidates to download."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from imgscraper.settingspec import SRCSET_MODES

__all__ = ["SrcsetCandidate", "parse_srcset", "pick_srcset", "pick_srcset_candidates"]

# Whitespace and commas, then the URL: a run of non-whitespace characters.
_SRCSET_URL = re.compile(r"[\t\n\f\r ,]*(?P<url>[^\t\n\f\r ,][^\t\n\f\r ]*)")
# Descriptors run to a comma outside parentheses, which is consumed.
_SRCSET_DESCRIPTORS = re.compile(r"(?P<descriptors>(?:[^,(]|\([^)]*\)?)*),?")
_SRCSET_DESCRIPTOR = re.compile(r"(?:[^\t\n\f\r (]|\([^)]*\)?)+")
_NON_NEGATIVE_INTEGER = re.compile(r"[0-9]+")
_FLOATING_POINT_NUMBER = re.compile(
    r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
)


@dataclass(frozen=True)
class SrcsetCandidate:
    """One image candidate of a ``srcset`` attribute.

    ``url`` is as written (not resolved). At most one of ``width`` (a ``w``
    descriptor) and ``density`` (an ``x`` descriptor) is set; neither means
    the implicit ``1x``.
    """

    url: str
    width: int | None = None
    density: float | None = None

    @property
    def descriptor(self) -> str:
        """The descriptor as written in a srcset: ``800w``, ``1.5x``, ``1x`` for none."""
        if self.width is not None:
            return f"{self.width}w"
        return f"{1.0 if self.density is None else self.density:g}x"


def parse_srcset(value: str) -> list[SrcsetCandidate]:
    """Parse a ``srcset`` attribute value into its valid candidates.

    This is the WHATWG HTML "parse a srcset attribute" algorithm
    (https://html.spec.whatwg.org/multipage/images.html#parsing-a-srcset-attribute):
    a URL is a run of non-whitespace characters, so it may contain commas,
    except that trailing commas end the candidate; descriptors run up to the
    next comma outside parentheses. Candidates with invalid descriptors
    (unknown, repeated, both ``w`` and ``x``, zero width, negative density,
    ``h`` without ``w``, ...) are dropped. ``h`` descriptors are validated,
    then ignored.
    """
    candidates = []
    position = 0
    while match := _SRCSET_URL.match(value, position):
        url = match["url"]
        position = match.end()
        if url.endswith(","):
            url = url.rstrip(",")
            descriptors = []
        else:
            match = _SRCSET_DESCRIPTORS.match(value, position)
            position = match.end()
            descriptors = _SRCSET_DESCRIPTOR.findall(match["descriptors"])
        candidate = _srcset_candidate(url, descriptors)
        if candidate is not None:
            candidates.append(candidate)
    return candidates


def pick_srcset(
    candidates: Sequence[SrcsetCandidate], mode: str = "largest"
) -> list[str]:
    """Return the URLs of the *candidates* to download.

    ``"largest"`` picks the one candidate with the largest width (``w``) or,
    when no candidate has a width, the largest density (``x``, no descriptor
    counting as ``1x``); the first wins a tie. ``"all"`` returns every
    candidate's URL.
    """
    return [candidate.url for candidate in pick_srcset_candidates(candidates, mode)]


def pick_srcset_candidates(candidates: Sequence[SrcsetCandidate], mode: str) -> list[SrcsetCandidate]:
    """The *candidates* :func:`pick_srcset` takes, with their descriptors."""
    if mode == "all":
        return list(candidates)
    if mode != "largest":
        raise ValueError(f"mode must be one of {SRCSET_MODES}, got {mode!r}")
    if not candidates:
        return []
    if widths := [c for c in candidates if c.width is not None]:
        return [max(widths, key=lambda c: c.width)]
    return [max(candidates, key=lambda c: 1.0 if c.density is None else c.density)]


def _srcset_candidate(url: str, descriptors: list[str]) -> SrcsetCandidate | None:
    """Return the candidate, or ``None`` if its *descriptors* are invalid."""
    width = density = height = None
    for descriptor in descriptors:
        number, kind = descriptor[:-1], descriptor[-1]
        if (
            kind == "w"
            and width is None
            and density is None
            and _NON_NEGATIVE_INTEGER.fullmatch(number)
            and int(number) > 0
        ):
            width = int(number)
        elif (
            kind == "x"
            and width is None
            and density is None
            and height is None
            and _FLOATING_POINT_NUMBER.fullmatch(number)
            and float(number) >= 0
        ):
            density = float(number)
        elif (
            kind == "h"
            and height is None
            and density is None
            and _NON_NEGATIVE_INTEGER.fullmatch(number)
            and int(number) > 0
        ):
            height = int(number)
        else:
            return None
    if height is not None and width is None:
        return None
    return SrcsetCandidate(url, width, density)
