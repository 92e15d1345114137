"""The browser's only way out: a SOCKS5 proxy in the crawl process (``render=yes``).

Playwright's request routing sees the requests a page starts, not the redirects they
follow, and Chromium opens connections no route sees (to the host of a frame whose request
was aborted, for update checks and sign-in). So Chromium makes no connection of its own:
each rendered page's browser context has :class:`BrowserGateway` as its proxy (given by
:class:`~imgscraper.downloadermiddlewares.browsergateway.BrowserGatewayMiddleware`), and
every other request of the browser goes to a proxy address where nothing can listen
(:meth:`~imgscraper.rendering.renderer.Renderer.scrapy_settings`).

For each connection a page asks for (its document, frames, scripts, style sheets,
fetch/XHR, WebSockets, images when loaded, and every redirect of them), the gateway applies
the crawl's private-network policy as the crawler does, on the resolved address: it
resolves the host through the crawl's guarded resolver (:mod:`imgscraper.resolver`; IP
literals are checked as they are) and connects to an address the policy allows, or refuses
(stat ``imgscraper/render/blocked/private-address``; the page sees
``net::ERR_SOCKS_CONNECTION_FAILED``). With a proxy in the environment (``http_proxy``,
``https_proxy``, ``no_proxy``, read like Scrapy's ``HttpProxyMiddleware`` reads them), it
connects through that proxy, with one ``CONNECT`` per connection; host names are still
checked, when they resolve here.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

from twisted.internet.error import DNSLookupError

from imgscraper.exceptions import AddressRefused, BlockedAddressError
from imgscraper.resolver import AddressGuard, is_ip_address

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

__all__ = ["BrowserGateway"]

logger = logging.getLogger(__name__)

# SOCKS5 reply codes (RFC 1928, section 6).
_SUCCEEDED, _FAILED, _NOT_ALLOWED, _HOST_UNREACHABLE, _REFUSED, _TIMED_OUT = 0, 1, 2, 4, 5, 6
_COMMAND_NOT_SUPPORTED, _ADDRESS_TYPE_NOT_SUPPORTED = 7, 8


class BrowserGateway:
    """A SOCKS5 proxy on 127.0.0.1 that connects the browser's pages where the crawl's
    policy allows (see the module docstring).

    ``timeout`` bounds each connection's setup; ``proxies`` are the proxies to connect
    through, by scheme, as :func:`urllib.request.getproxies` gives them.
    """

    def __init__(self, stats: StatsCollector, timeout: float, proxies: dict[str, str] | None = None):
        self.stats = stats
        self.timeout = timeout
        self.proxies = proxies or {}
        #: The proxy URL for the browser contexts, once :meth:`start` was called.
        self.url = ""
        self._server: asyncio.Future[asyncio.Server] | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._failures: dict[tuple[str, int], Exception] = {}
        self._refused_hosts: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BrowserGateway:
        proxies = getproxies() if crawler.settings.getbool("HTTPPROXY_ENABLED") else {}
        return cls(crawler.stats, crawler.settings.getfloat("DOWNLOAD_TIMEOUT"), proxies)

    def start(self) -> str:
        """Listen on 127.0.0.1 (the first time) and return the proxy URL for the browser."""
        if self._server is None:
            sock = socket.create_server(("127.0.0.1", 0))
            self.url = f"socks5://127.0.0.1:{sock.getsockname()[1]}"
            # Connections wait in the listening socket's backlog until the server runs.
            self._server = asyncio.ensure_future(asyncio.start_server(self._serve, sock=sock))
        return self.url

    def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is None:
            return
        if self._server.done() and not self._server.cancelled() and self._server.exception() is None:
            self._server.result().close()
        else:
            self._server.cancel()
        for writer in list(self._connections):
            writer.transport.abort()

    def failure(self, host: str, port: int) -> Exception | None:
        """Why the last connection to ``host``:``port`` failed (None if it did not): a
        :class:`~imgscraper.exceptions.BlockedAddressError`, ``DNSLookupError`` or ``OSError``."""
        return self._failures.get((host.lower(), port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            target = await _read_request(reader, writer)
            if target is not None:
                await self._tunnel(reader, writer, *target)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the browser went away
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        key = (host.lower(), port)
        try:
            upstream_reader, upstream_writer = await self._connect(host, port)
        except (OSError, BlockedAddressError) as exc:  # DNSLookupError and TimeoutError are OSErrors
            self._failures[key] = exc
            self._report(host, port, exc)
            writer.write(_reply(_reply_code(exc)))
            return
        self._failures.pop(key, None)
        self._connections.add(upstream_writer)
        writer.write(_reply(_SUCCEEDED))
        relays = [asyncio.ensure_future(_relay(reader, upstream_writer)),
                  asyncio.ensure_future(_relay(upstream_reader, writer))]
        try:
            # Chromium closes a connection for good, never half-way: one end done, both are.
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for relay in relays:
                relay.cancel()
            self._connections.discard(upstream_writer)
            upstream_writer.close()

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``host``:``port`` on an allowed address, or through the proxy."""
        proxy = self.proxies.get("https" if port == 443 else "http", "")
        if proxy and proxy_bypass(host):
            proxy = ""
        addresses = await self._allowed_addresses(host, proxied=bool(proxy))
        if proxy:
            return await self._through_proxy(proxy, host, port)
        error: OSError = DNSLookupError(f"{host} does not resolve")
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port), self.timeout)
            except socket.gaierror as exc:  # no guarded resolver: asyncio resolved the name
                error = DNSLookupError(f"{host}: {exc.strerror}")
            except OSError as exc:
                error = exc
        raise error

    async def _allowed_addresses(self, host: str, proxied: bool) -> list[str]:
        """The addresses of ``host`` the policy allows; through a proxy, none needed if it does not resolve here."""
        guard = AddressGuard.installed
        if is_ip_address(host):
            if guard is not None and (category := guard.refused(host, host)):
                raise BlockedAddressError(host, host, category)
            return [host.strip("[]")]
        if guard is None:  # CrawlerRunner: PrivateNetworkMiddleware warned that names are not checked
            return [host]
        try:
            return await guard.allowed_addresses(host)
        except AddressRefused as exc:
            raise BlockedAddressError(host, exc.address, exc.category) from None
        except DNSLookupError:
            if proxied:
                return []
            raise

    async def _through_proxy(self, proxy: str, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        tls = parts.scheme == "https"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or (443 if tls else 80), ssl=tls or None), self.timeout)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            head += f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"
        writer.write(f"{head}\r\n".encode())
        try:
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            answer = b"no answer"
        status = answer.partition(b"\r\n")[0].decode("latin-1")
        if status.split(" ")[1:2] != ["200"]:
            writer.close()
            raise ConnectionRefusedError(f"the proxy {parts.hostname} refused CONNECT {target}: {status}")
        return reader, writer

    def _report(self, host: str, port: int, exc: Exception) -> None:
        if not isinstance(exc, BlockedAddressError):
            logger.debug("The browser's connection to %s:%s failed: %s", host, port, exc)
            return
        self.stats.inc_value("imgscraper/render/blocked/private-address")
        if host.lower() not in self._refused_hosts:
            self._refused_hosts.add(host.lower())
            address = f"{exc.address}, " if exc.address != host else ""
            logger.info("Refused the browser's connections to %s (%sa %s address): only the start URLs' networks are "
                        "allowed; -s IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True allows every network", host, address, exc.category)


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, int] | None:
    """Read a SOCKS5 greeting (no authentication) and request; the host and port to
    connect to, or None when the request was refused here."""
    version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if version != 5 or 0 not in methods:
        writer.write(b"\x05\xff")  # no acceptable authentication method
        return None
    writer.write(b"\x05\x00")
    _, command, _, address_type = await reader.readexactly(4)
    if address_type == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif address_type == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif address_type == 3:  # what Chromium sends, IP literals included
        host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("ascii", "replace")
    else:
        writer.write(_reply(_ADDRESS_TYPE_NOT_SUPPORTED))
        return None
    port = int.from_bytes(await reader.readexactly(2), "big")
    if command != 1:  # only CONNECT: no BIND, no UDP
        writer.write(_reply(_COMMAND_NOT_SUPPORTED))
        return None
    return host, port


def _reply(code: int) -> bytes:
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


def _reply_code(exc: Exception) -> int:
    if isinstance(exc, BlockedAddressError):
        return _NOT_ALLOWED
    if isinstance(exc, DNSLookupError):
        return _HOST_UNREACHABLE
    if isinstance(exc, ConnectionRefusedError):
        return _REFUSED
    if isinstance(exc, TimeoutError):
        return _TIMED_OUT
    return _FAILED


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy what ``reader`` reads to ``writer`` until its end."""
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
