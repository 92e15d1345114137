"""Durations written the way people write them in settings and schedule files."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]?)", re.IGNORECASE)


def parse_duration(value: str | float, default_unit: str = "d") -> float:
    """Seconds in ``value``: a number followed by ``s``, ``m``, ``h``, ``d`` or ``w``
    (``90m``, ``12h``, ``7d``, ``1.5h``), or a bare number of ``default_unit``.

    Raises ``ValueError`` for anything else (negative numbers included).
    """
    text = str(value).strip()
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30m, 12h, 7d or 2w")
    unit = (match["unit"] or default_unit).lower()
    return float(match["number"]) * _UNITS[unit]
