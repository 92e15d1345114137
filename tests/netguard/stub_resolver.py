"""Test-only resolver: ``-s TWISTED_DNS_RESOLVER=stub_resolver.StubResolver`` with this folder
on ``PYTHONPATH``. Names are answered from ``IMGSCRAPER_TEST_HOSTS`` (a JSON object, name to
IPv4 address) and never sent to real DNS; IP literals resolve to themselves. The check of
:class:`imgscraper.addresses.GuardedResolver`, the piece under test, is unchanged.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress
from twisted.internet.error import DNSLookupError

from imgscraper.addresses import GuardedResolver

HOSTS: dict[str, str] = json.loads(os.environ.get("IMGSCRAPER_TEST_HOSTS", "{}"))


class StubResolver(GuardedResolver):
    #: Every name looked up, in order (for unit tests).
    looked_up: list[str] = []

    def lookup(self, name, timeout=()):
        StubResolver.looked_up.append(name)
        if isIPAddress(name):
            return defer.succeed(name)
        if name.lower() in HOSTS:
            return defer.succeed(HOSTS[name.lower()])
        return defer.fail(DNSLookupError(f"{name} is not in IMGSCRAPER_TEST_HOSTS"))
