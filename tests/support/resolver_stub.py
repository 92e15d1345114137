"""Name resolvers for test crawls: every connection stays on this machine.

Use them in a crawl subprocess with ``PYTHONPATH=tests`` and
``-s TWISTED_DNS_RESOLVER=resolver_stub.<class>``. Both are
:class:`imgscraper.resolver.GuardedResolver` with only the lookup replaced,
so private addresses are refused as in production.

``LoopbackTestResolver``
    Host names under ``.test`` resolve to 127.0.0.1: a page can then name
    hosts such as ``bücher.test`` (sent as ``xn--bcher-kva.test``). Other
    names resolve as usual.
``MappedTestResolver``
    Names are answered from ``IMGSCRAPER_TEST_HOSTS`` (a JSON object, name to
    IPv4 address) and never sent to real DNS; IP literals resolve to
    themselves; other names fail to resolve.
"""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress
from twisted.internet.error import DNSLookupError

from imgscraper.resolver import GuardedResolver


class LoopbackTestResolver(GuardedResolver):
    def lookup(self, name: str, timeout=()):
        if name.lower().rstrip(".").endswith(".test"):
            return defer.succeed("127.0.0.1")
        return super().lookup(name, timeout)


class MappedTestResolver(GuardedResolver):
    #: Name -> IPv4 address.
    hosts: dict[str, str] = json.loads(os.environ.get("IMGSCRAPER_TEST_HOSTS", "{}"))

    def lookup(self, name: str, timeout=()):
        if isIPAddress(name):
            return defer.succeed(name)
        if name.lower() in self.hosts:
            return defer.succeed(self.hosts[name.lower()])
        return defer.fail(DNSLookupError(f"{name} is not in IMGSCRAPER_TEST_HOSTS"))
