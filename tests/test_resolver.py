"""No fetch into private networks (imgscraper/resolver.py, imgscraper/downloadermiddlewares/privatenetworks.py).

End to end: a start page on 127.0.0.1 references images on a name that resolves to 10.x,
on 169.254.169.254, on a private IPv6 literal, and images whose URL (on the allowed start
host) redirects to a private literal or to a name that resolves to link-local. Every one is
an item ``failed``/``blocked-address`` with one log line, and no connection was attempted:
names are answered by a resolver stub (tests/support/resolver_stub.py, the guarded resolver with its
lookup replaced), and a network guard (tests/support/netguard/sitecustomize.py) refuses and
records every connection outside loopback, so a test fails if the crawl even tried one.

A start URL on a public address cannot be served here, so the policy itself (which
categories a start host allows) is tested at unit level, and the middleware in
test_downloadermiddlewares.py.
"""

from __future__ import annotations

import json

import pytest

from imgscraper.resolver import AddressPolicy, address_category
from tests.support.crawl import PROJECT_ROOT
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

NETGUARD = PROJECT_ROOT / "tests" / "support" / "netguard"

HOSTS = {
    "intranet.test": "10.1.2.3",
    "metadata.test": "169.254.169.254",
    "alias.test": "127.0.0.1",  # a public-looking name on loopback: allowed, as the start page is there
}


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www") as server:
        port = server.url.rsplit(":", 1)[1].strip("/")
        images = {"/ok.png": png(1), "/ok2.png": png(2)}
        refs = {
            "ok": "/ok.png",
            "alias": f"http://alias.test:{port}/ok2.png",
            "intranet": f"http://intranet.test:{port}/a.png",
            # More refusals on one host than IMGSCRAPER_HOST_FAILURES: refused, not "unreachable".
            "intranet-2": f"http://intranet.test:{port}/a2.png",
            "intranet-3": f"http://intranet.test:{port}/a3.png",
            "metadata-literal": "http://169.254.169.254/latest/meta-data/b.png",
            "private-v6": "http://[fd00:ec2::254]/c.png",
            "redirect-literal": "/to-private.png",
            "redirect-name": "/to-metadata.png",
        }
        page = "".join(f'<img src="{url}">' for url in refs.values())
        page += f'<a href="http://intranet.test:{port}/admin.html">admin</a>'
        server.add_handler("/", lambda h: h.send_body(page, content_type="text/html") or True)
        server.add_handler(lambda path: path in images, lambda h: h.send_body(images[h.url_path], content_type="image/png") or True)
        redirects = {"/to-private.png": "http://10.0.0.5/admin.png", "/to-metadata.png": "http://metadata.test/d.png"}
        server.add_handler("/to-*", lambda h: h.send_body(b"", status=302, headers={"Location": redirects[h.url_path]}) or True)
        server.refs = {name: (server.url + url[1:] if url.startswith("/") else url) for name, url in refs.items()}
        yield server


def crawl(run_crawl, site, tmp_path, *settings: str, start: str = ""):
    connect_log = tmp_path / "connects.log"
    env = {
        "PYTHONPATH": f"{NETGUARD}:{PROJECT_ROOT}",
        "IMGSCRAPER_TEST_CONNECT_LOG": str(connect_log),
        "IMGSCRAPER_TEST_HOSTS": json.dumps(HOSTS),
    }
    args = ["-a", f"url={start or site.url}", "-a", "depth=1", "-a", "follow_domains=*",
            "-s", "TWISTED_DNS_RESOLVER=tests.support.resolver_stub.MappedTestResolver"]
    for setting in settings:
        args += ["-s", setting]
    result = run_crawl(args, out_dir=tmp_path / "out", env=env, timeout=60)
    attempts = connect_log.read_text().splitlines() if connect_log.exists() else []
    return result, attempts


def test_private_addresses_refused_without_a_connection(run_crawl, site, tmp_path):
    result, attempts = crawl(run_crawl, site, tmp_path)
    assert attempts == [], f"connections attempted outside loopback: {attempts}"
    assert "Traceback" not in result.stderr, result.tail()
    items = result.by_url()
    refs = site.refs
    assert items[refs["ok"]]["status"] == "downloaded", items
    assert items[refs["alias"]]["status"] == "downloaded", items  # loopback, like the start page
    blocked = ["intranet", "metadata-literal", "private-v6", "redirect-literal", "redirect-name"]
    for name in blocked:
        item = items[refs[name]]
        assert (item["status"], item["reason"]) == ("failed", "blocked-address"), (name, item)
        # One line per refused image, naming it.
        lines = [line for line in result.stderr.splitlines() if refs[name] in line and "blocked-address" in line]
        assert len(lines) == 1, (name, lines)
    for name in ("intranet-2", "intranet-3"):
        assert (items[refs[name]]["status"], items[refs[name]]["reason"]) == ("failed", "blocked-address"), items
    # The page on that host too; its line is the fourth blocked-address one of the host: counted at the end.
    assert result.stats.get("imgscraper/pages_failed/blocked-address") == 1
    assert "and 1 more blocked-address from intranet.test" in result.stderr and "is 10.1.2.3, a private address" in result.stderr
    assert result.stderr.count("Refusing connections to loopback, private, link-local, unspecified addresses") == 1
    assert result.stats.get("imgscraper/images/failed/blocked-address") == 7
    # Counted per refused request (robots.txt requests included), by category.
    assert "imgscraper/blocked_addresses/link-local" in result.stats
    assert "imgscraper/blocked_addresses/private" in result.stats
    assert "retry/" not in result.stderr, result.tail()  # refusals are not retried


def test_a_start_host_name_allows_the_network_it_resolves_to(run_crawl, site, tmp_path):
    port = site.url.rsplit(":", 1)[1].strip("/")
    start = f"http://alias.test:{port}/"  # resolves to 127.0.0.1: loopback is the start URL's network
    result, attempts = crawl(run_crawl, site, tmp_path, start=start)
    assert attempts == [], f"connections attempted outside loopback: {attempts}"
    items = result.by_url()
    assert items[f"{start}ok.png"]["status"] == "downloaded", items
    assert items[site.refs["intranet"]]["reason"] == "blocked-address", items
    assert items[site.refs["metadata-literal"]]["reason"] == "blocked-address", items


def test_allow_private_networks_turns_the_refusal_off(run_crawl, site, tmp_path):
    result, attempts = crawl(run_crawl, site, tmp_path, "IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True", "RETRY_ENABLED=False")
    # The crawl tried them: the network guard refused and recorded each (nothing left this machine).
    hosts = {line.split()[0] for line in attempts}
    assert {"10.1.2.3", "169.254.169.254", "10.0.0.5"} <= hosts, attempts
    items = result.by_url()
    assert items[site.refs["intranet"]]["reason"] == "connection-refused", items
    assert "blocked-address" not in result.stderr


# -- the policy, unit ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address, category",
    [
        ("127.0.0.1", "loopback"), ("127.5.5.5", "loopback"), ("::1", "loopback"),
        ("10.0.0.5", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
        ("192.168.1.1", "private"), ("fd00:ec2::254", "private"), ("fc00::1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"),
        ("93.184.216.34", None), ("172.32.0.1", None), ("2606:4700::1111", None), ("example.com", None),
    ],
)
def test_address_category(address, category):
    assert address_category(address) == category


def test_policy_of_a_crawl_started_on_a_public_address():
    policy = AddressPolicy(["93.184.216.34"])
    assert policy.allowed == set()
    for address in ("127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "0.0.0.0"):
        assert policy.refusal("img.example", address) is not None, address
    assert policy.refused == {"img.example": ("0.0.0.0", "unspecified")}
    assert policy.refusal("img.example", "93.184.216.35") is None  # its DNS answer changed: allowed now
    assert policy.refused == {}


def test_policy_allows_the_start_hosts_networks():
    policy = AddressPolicy(["intranet.corp", "127.0.0.1"])
    assert policy.allowed == {"loopback"}
    assert policy.refusal("cdn.corp", "10.0.0.7") == "private"  # before the start host resolved
    assert policy.refusal("intranet.corp", "10.0.0.6") is None  # a start host: its network is allowed
    assert policy.refusal("cdn.corp", "10.0.0.7") is None
    assert "cdn.corp" not in policy.refused
    assert policy.refusal("metadata", "169.254.169.254") == "link-local"


def test_guarded_resolver_refuses_names_of_refused_addresses(monkeypatch):
    from twisted.internet.error import DNSLookupError

    from tests.support.resolver_stub import MappedTestResolver

    monkeypatch.setattr(MappedTestResolver, "hosts", {"public.test": "93.184.216.34", "intranet.test": "10.1.2.3"})
    resolver = MappedTestResolver(None, 0, 1.0)
    results: list = []
    assert resolver.getHostByName("intranet.test").addCallback(results.append).called  # no policy: anything
    resolver.policy = AddressPolicy(["public.test"])
    resolver.getHostByName("public.test").addCallback(results.append)
    resolver.getHostByName("intranet.test").addErrback(results.append)
    resolver.getHostByName("169.254.169.254").addErrback(results.append)
    assert results[:2] == ["10.1.2.3", "93.184.216.34"]
    assert all(r.check(DNSLookupError) for r in results[2:]) and len(results) == 4
    assert resolver.policy.refused == {"intranet.test": ("10.1.2.3", "private"),
                                       "169.254.169.254": ("169.254.169.254", "link-local")}


def test_guarded_hostname_resolver_leaves_refused_addresses_out():
    from types import SimpleNamespace

    from twisted.internet.address import IPv4Address, IPv6Address
    from twisted.internet.interfaces import IResolutionReceiver
    from zope.interface import implementer

    from imgscraper.resolver import GuardedHostnameResolver

    answers = {
        "mixed.test": [IPv4Address("TCP", "10.1.2.3", 0), IPv6Address("TCP", "2606:4700::1111", 0)],
        "private6.test": [IPv6Address("TCP", "fd00::5", 0), IPv6Address("TCP", "fe80::1", 0)],
    }

    class Lookup:  # the system's getaddrinfo, faked: not the piece under test
        def resolveHostName(self, receiver, name, portNumber=0, addressTypes=None, transportSemantics="TCP"):
            receiver.resolutionBegan(None)
            for address in answers[name]:
                receiver.addressResolved(address)
            receiver.resolutionComplete()

    @implementer(IResolutionReceiver)
    class Collect:
        def __init__(self):
            self.addresses, self.complete = [], False

        def resolutionBegan(self, resolution):
            pass

        def addressResolved(self, address):
            self.addresses.append(address.host)

        def resolutionComplete(self):
            self.complete = True

    resolver = GuardedHostnameResolver(SimpleNamespace(nameResolver=Lookup()), 100)
    resolver.policy = AddressPolicy(["93.184.216.34"])
    for name, allowed in (("mixed.test", ["2606:4700::1111"]), ("private6.test", []), ("mixed.test", ["2606:4700::1111"])):
        receiver = Collect()  # the second lookup of mixed.test comes from Scrapy's DNS cache
        resolver.resolveHostName(receiver, name)
        assert (receiver.addresses, receiver.complete) == (allowed, True), name
    assert resolver.policy.refused["private6.test"] == ("fe80::1", "link-local")
