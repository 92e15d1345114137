"""The browser obeys the crawl's rules (``render=yes``): imgscraper/rendering/gateway.py.

End to end: a rendered page on 127.0.0.1 whose frame, script, style sheet, ``fetch()``,
image (loaded by the browser) and a redirect point at 10.255.255.1, ``[fd00::1]`` and a
name that resolves to 169.254.169.254. Nothing may go out for them, nor for Chromium's own
calls (update.googleapis.com, accounts.google.com), while the page's allowed requests
(loopback, the start page's network, also by a name) still load.

Nothing here can connect outside loopback: names are answered by a resolver stub
(tests/resolver_stub.py), the network guard (tests/netguard) refuses and records every
connection the crawl process attempts outside loopback, and the crawl's proxy
(``http_proxy``/``https_proxy``) is :class:`LoggingProxy`, which records what it is asked
for and forwards nothing: what the browser would send out arrives there. A public name of
the page (``cdn.test``, a public address in the stub) does arrive, which shows it is the
place to look. Scrapy's own requests to names through a proxy are not checked (by design,
imgscraper/resolver.py), so the crawl fetches neither robots.txt nor style sheets itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from urllib.parse import urlsplit

import pytest

from imgscraper.exceptions import BlockedAddressError
from imgscraper.resolver import AddressGuard, AddressPolicy
from imgscraper.rendering.gateway import BrowserGateway
from tests.support.crawl import PROJECT_ROOT
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

NETGUARD = PROJECT_ROOT / "tests" / "support" / "netguard"
HOSTS = {
    "metadata.test": "169.254.169.254",
    "alias.test": "127.0.0.1",  # the start page's network, by a name
    "cdn.test": "93.184.216.34",  # public: allowed, and sent to the crawl's proxy
}
PRIVATE_HOSTS = ("10.255.255.1", "fd00::1", "metadata.test")
#: Where Chromium's own calls go when nothing stops them.
BROWSER_HOSTS = re.compile(r"google|gvt1|gstatic|chrome")


class LoggingProxy(socket.socket):
    """An HTTP proxy on 127.0.0.1 that records the first line of every request
    (``CONNECT host:port``, ``GET http://...``) and answers 502: it forwards nothing."""

    def __init__(self):
        super().__init__()
        self.bind(("127.0.0.1", 0))
        self.listen(64)
        self.url = f"http://127.0.0.1:{self.getsockname()[1]}"
        self.requests: list[str] = []
        #: The Proxy-Authorization headers received.
        self.authorizations: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream:
            connection.settimeout(5)
            try:
                line = stream.readline().decode("latin-1").strip()
            except OSError:
                return
            if line:
                self.requests.append(line)
                while header := stream.readline().strip():
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.lower() == "proxy-authorization":
                        self.authorizations.append(value.strip())
            connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def hosts(self) -> set[str]:
        """The hosts asked for (``CONNECT host:port`` or an absolute URL)."""
        targets = (line.split()[1] for line in self.requests if len(line.split()) > 1)
        return {urlsplit(target if "://" in target else f"//{target}").hostname for target in targets}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with HTTPTestServer(tmp_path_factory.mktemp("www")) as server:
        port = server.port
        page = f"""<!doctype html><html><head>
<link rel="stylesheet" href="http://metadata.test/s.css">
<link rel="stylesheet" href="http://cdn.test:{port}/public.css">
<script src="http://[fd00::1]/x.js"></script>
<script src="/to-private.js"></script>
<script src="http://alias.test:{port}/app.js"></script>
</head><body>
<iframe src="http://10.255.255.1/frame.html"></iframe>
<iframe src="http://metadata.test/frame.html"></iframe>
<img src="http://10.255.255.1/i.png">
<img src="/ok.png">
<script>
fetch("http://metadata.test/api").catch(() => 0);
fetch("http://[fd00::1]/api").catch(() => 0);
</script>
</body></html>"""
        script = "const img = new Image(); img.src = '/by-script.png'; document.body.appendChild(img);"
        files = {"/": (page, "text/html"), "/app.js": (script, "text/javascript"),
                 "/ok.png": (png(1, noise=True), "image/png"), "/by-script.png": (png(2, noise=True), "image/png")}
        server.add_handler(lambda path: path in files,
                           lambda h: h.send_body(files[h.url_path][0], content_type=files[h.url_path][1]) or True)
        server.add_handler("/to-private.js", lambda h: h.send_body(
            b"", status=302, headers={"Location": "http://10.255.255.1/r.js"}) or True)
        yield server


def rendered_crawl(run_crawl, site, tmp_path, *settings: str):
    proxy = LoggingProxy()
    connect_log = tmp_path / "connects.log"
    env = {
        "PYTHONPATH": f"{NETGUARD}:{PROJECT_ROOT}",
        "IMGSCRAPER_TEST_CONNECT_LOG": str(connect_log),
        "IMGSCRAPER_TEST_HOSTS": json.dumps(HOSTS),
        "http_proxy": proxy.url, "https_proxy": proxy.url, "no_proxy": "127.0.0.1,alias.test",
    }
    args = ["-a", f"url={site.url}", "-a", "render=yes", "-a", "follow_domains=*",
            "-s", "TWISTED_DNS_RESOLVER=tests.support.resolver_stub.MappedTestResolver",
            "-s", "ROBOTSTXT_OBEY=False", "-s", "IMGSCRAPER_STYLESHEETS=False",
            "-s", "IMGSCRAPER_RENDER_LOAD_IMAGES=True"]
    for setting in settings:
        args += ["-s", setting]
    site.log.clear()
    try:
        result = run_crawl(args, out_dir=tmp_path / "out", env=env, timeout=120)
    finally:
        proxy.close()
    site.log.wait_idle()
    result.proxied = proxy.requests
    result.proxied_hosts = proxy.hosts()
    result.attempts = connect_log.read_text().splitlines() if connect_log.exists() else []
    result.served = [r.url_path for r in site.log.snapshot()]
    return result


@pytest.fixture(scope="module")
def refused(run_crawl, site, chromium, tmp_path_factory):
    return rendered_crawl(run_crawl, site, tmp_path_factory.mktemp("refused"))


def test_nothing_goes_out_for_private_addresses(refused):
    assert refused.attempts == [], f"connections attempted outside loopback: {refused.attempts}"
    assert not refused.proxied_hosts & set(PRIVATE_HOSTS), refused.proxied
    assert "Traceback" not in refused.stderr, refused.tail()
    assert refused.returncode == 0, refused.tail()


def test_the_browser_makes_no_call_of_its_own(refused):
    assert not {host for host in refused.proxied_hosts if BROWSER_HOSTS.search(host)}, refused.proxied


def test_what_the_policy_allows_still_loads(refused):
    # The page's script, by a name on the start page's network, ran: it loaded an image.
    assert "/app.js" in refused.served and "/by-script.png" in refused.served, refused.served
    assert {item["url"].rsplit("/", 1)[1] for item in refused.items if item["status"] == "downloaded"} >= {
        "ok.png", "by-script.png"}, refused.items
    # A public host goes to the crawl's proxy (which answers 502): that is where the rest would be.
    assert refused.proxied_hosts == {"cdn.test"}, refused.proxied


def test_refused_connections_are_counted_and_named(refused):
    # The style sheet, script, redirect, frame, image and fetch() calls: Chromium may try one twice.
    assert refused.stats.get("imgscraper/render/blocked/private-address") >= 6, refused.tail()
    for host, why in (("10.255.255.1", "a private address"), ("fd00::1", "a private address"),
                      ("metadata.test", "169.254.169.254, a link-local address")):
        lines = [line for line in refused.stderr.splitlines() if f"Refused the browser's connections to {host} ({why})" in line]
        assert len(lines) == 1, (host, refused.tail())
    # The frames are pages the spider follows: refused as the crawler's own (the IP literal before
    # the browser, the name by the browser's gateway), and so is the image.
    assert refused.stats.get("imgscraper/pages_failed/blocked-address") == 2, refused.tail()
    items = {item["url"]: item for item in refused.items}
    assert items["http://10.255.255.1/i.png"]["reason"] == "blocked-address", items


def test_allow_private_networks_lets_the_browser_connect(run_crawl, site, chromium, tmp_path):
    result = rendered_crawl(run_crawl, site, tmp_path, "IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True")
    assert result.attempts == [], f"connections attempted outside loopback: {result.attempts}"
    # Each went to the crawl's proxy, which forwarded nothing.
    assert set(PRIVATE_HOSTS) <= result.proxied_hosts, result.proxied
    assert result.stats.get("imgscraper/render/blocked/private-address") is None, result.tail()


# -- the gateway alone: a SOCKS5 client on one side, servers on 127.0.0.1 on the other ---------


async def socks_connect(url: str, host: str, port: int) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection to ``host``:``port`` through the SOCKS5 proxy at ``url``; the reply code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
    reply = await reader.readexactly(10)
    return reply[1], reader, writer


class Stats(dict):
    def inc_value(self, key, count=1):
        self[key] = self.get(key, 0) + count


@pytest.fixture
def guard(monkeypatch):
    from tests.support.resolver_stub import MappedTestResolver

    monkeypatch.setattr(MappedTestResolver, "hosts", HOSTS)
    resolver = MappedTestResolver(None, 0, 1.0)
    resolver.policy = AddressPolicy(["127.0.0.1"])
    monkeypatch.setattr(AddressGuard, "installed", resolver)
    return resolver


def test_gateway_connects_allowed_hosts_and_refuses_the_others(guard):
    async def scenario():
        async def echo(reader, writer):
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        gateway = BrowserGateway(Stats(), timeout=5)
        url = gateway.start()
        code, reader, writer = await socks_connect(url, "alias.test", port)
        writer.write(b"ping")
        assert (code, await reader.read()) == (0, b"ping")
        outcomes = []
        for host in ("metadata.test", "10.255.255.1", "fd00::1", "unknown.test"):
            code, _, writer = await socks_connect(url, host, 80)
            outcomes.append((host, code, type(gateway.failure(host, 80)).__name__))
            writer.close()
        gateway.close()
        server.close()
        return gateway, outcomes

    gateway, outcomes = asyncio.run(scenario())
    assert outcomes == [("metadata.test", 2, "BlockedAddressError"), ("10.255.255.1", 2, "BlockedAddressError"),
                        ("fd00::1", 2, "BlockedAddressError"), ("unknown.test", 4, "DNSLookupError")]
    assert gateway.stats == {"imgscraper/render/blocked/private-address": 3}
    assert isinstance(gateway.failure("METADATA.test", 80), BlockedAddressError)
    assert gateway.failure("alias.test", 80) is None


def test_gateway_goes_through_the_crawls_proxy(guard):
    async def scenario():
        proxy = LoggingProxy()
        gateway = BrowserGateway(Stats(), timeout=5, proxies={"http": proxy.url.replace("http://", "http://u%40x:p@")})
        url = gateway.start()
        codes = []
        for host in ("cdn.test", "metadata.test"):
            code, _, writer = await socks_connect(url, host, 80)
            codes.append(code)
            writer.close()
        gateway.close()
        proxy.close()
        return codes, proxy.requests, proxy.authorizations, gateway.failure("cdn.test", 80)

    codes, requests, authorizations, failure = asyncio.run(scenario())
    # The proxy answered 502 to CONNECT cdn.test:80; metadata.test never reached it.
    assert codes == [5, 2] and requests == ["CONNECT cdn.test:80 HTTP/1.1"], (codes, requests)
    assert "refused CONNECT cdn.test:80: HTTP/1.1 502 Bad Gateway" in str(failure)
    assert authorizations == ["Basic dUB4OnA="]  # u@x:p, from the proxy URL's quoted credentials
