"""Project commands (``COMMANDS_MODULE``)."""

from __future__ import annotations

from collections.abc import Mapping

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

__all__ = ["wants_rendering", "use_reactor_for_rendering"]


def wants_rendering(spargs: Mapping[str, str]) -> bool:
    """Whether the spider arguments turn rendering on (``-a render=yes``, or
    ``-a click=...`` without ``render``).

    A value that is not yes or no counts as no: the spider reports it.
    """
    from imgscraper.spiders.images import ArgumentError, parse_yes_no  # noqa: PLC0415

    if "render" not in spargs:
        return "click" in spargs
    try:
        return parse_yes_no("render", spargs["render"])
    except ArgumentError:
        return False


def use_reactor_for_rendering(settings: BaseSettings, spargs: Mapping[str, str]) -> None:
    """Turn the Twisted reactor on when the spider arguments ask for rendering.

    The project crawls without a reactor (``TWISTED_REACTOR_ENABLED = False``),
    but scrapy-playwright needs the asyncio reactor, and Scrapy picks the
    reactor before the spider sees its arguments, so a command that runs the
    spider has to decide. ``-s TWISTED_REACTOR_ENABLED=...`` on the command
    line wins (``False`` with ``render=yes`` is then a bad argument).
    """
    priority = settings.getpriority("TWISTED_REACTOR_ENABLED") or 0
    if wants_rendering(spargs) and priority < SETTINGS_PRIORITIES["cmdline"]:
        settings.set("TWISTED_REACTOR_ENABLED", True, priority="cmdline")
