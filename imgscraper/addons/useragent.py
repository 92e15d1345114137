"""The crawl's ``User-Agent`` names who runs it: ``imgscraper/0.1 (+mailto:me@example.com)``.

:class:`ContactUserAgent` is a Scrapy add-on: when ``IMGSCRAPER_CONTACT`` holds an e-mail address
or an http(s) URL, it adds it to the project's ``USER_AGENT`` (``imgscraper/<version>``), the
way crawlers give site owners someone to write to. Without a contact the ``User-Agent`` names the
program alone, never a made-up address. A ``USER_AGENT`` given with ``-s`` (or by the spider) is
left as it is.
"""

from __future__ import annotations

import re
from typing import Any

from scrapy.settings import SETTINGS_PRIORITIES, Settings

from imgscraper.utils import host_of

__all__ = ["ContactUserAgent", "contact_reference"]

_EMAIL = re.compile(r"[^@\s()<>;,]+@[^@\s()<>;,]+\.[^@\s()<>;,.]+")
#: What would end the User-Agent's comment or product early.
_NOT_IN_COMMENT = re.compile(r"[\s()<>;\\]")


def contact_reference(contact: Any) -> str:
    """The ``User-Agent`` comment's reference for ``contact``: an http(s) URL as given,
    ``mailto:`` and an e-mail address; '' for none. ``ValueError`` for anything else."""
    text = str(contact or "").strip()
    if not text:
        return ""
    address = text.removeprefix("mailto:")
    if _EMAIL.fullmatch(address):
        return f"mailto:{address}"
    if text.lower().startswith(("http://", "https://")) and host_of(text) and not _NOT_IN_COMMENT.search(text):
        return text
    raise ValueError("is neither an e-mail address nor an http(s) URL")


class ContactUserAgent:
    """Add-on that adds ``IMGSCRAPER_CONTACT`` to the project's ``USER_AGENT`` (see the module docstring)."""

    def update_settings(self, settings: Settings) -> None:
        if (settings.getpriority("USER_AGENT") or 0) > SETTINGS_PRIORITIES["project"]:
            return
        try:
            reference = contact_reference(settings.get("IMGSCRAPER_CONTACT"))
        except ValueError:
            return  # imgscraper.addons.settingscheck reports it
        if reference:
            settings.set("USER_AGENT", f"{settings.get('USER_AGENT')} (+{reference})", priority="project")
