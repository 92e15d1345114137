"""A name resolver for test crawls: host names under ``.test`` resolve to 127.0.0.1.

Use it in a crawl subprocess with ``PYTHONPATH=tests`` and
``-s TWISTED_DNS_RESOLVER=resolver_stub.LoopbackTestResolver``: a page can
then name hosts such as ``bücher.test`` (sent as ``xn--bcher-kva.test``)
while every connection stays on this machine. Other names resolve as usual.
"""

from __future__ import annotations

from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer


class LoopbackTestResolver(CachingThreadedResolver):
    def getHostByName(self, name: str, timeout=()):  # noqa: N802 (Twisted's name)
        if name.lower().rstrip(".").endswith(".test"):
            return defer.succeed("127.0.0.1")
        return super().getHostByName(name, timeout)
