"""No fetch into private networks: addresses a crawl refuses to connect to.

A page can name any host: ``http://169.254.169.254/latest/meta-data/`` (cloud
metadata), ``http://10.0.0.5/admin``, ``http://localhost:6379/``, or a public
name whose DNS answers with such an address, or an image URL that redirects
there. A crawler run as a service (Scrapyd jobs whose URLs come from other
people) must not connect there. By default (``IMGSCRAPER_ALLOW_PRIVATE_NETWORKS
= False``) an address in one of the :data:`CATEGORIES` is refused, unless a
start URL is itself in that category: a crawl of ``http://127.0.0.1:8000/``
may fetch from loopback, a crawl of an intranet host from private networks.

The check is made on the resolved address, where the connection is made:

* :class:`GuardedResolver` (``TWISTED_DNS_RESOLVER``, the default; or
  :class:`GuardedHostnameResolver` for IPv6) refuses to resolve a name to a
  refused address. Twisted's ``HostnameEndpoint`` resolves every
  host through it, IP literals included, so every connection of Scrapy's
  HTTP/1.1 handler is checked, redirects and retries too, and DNS answers
  that change between lookups (rebinding) are checked each time.
* :class:`~imgscraper.downloadermiddlewares.privatenetworks.PrivateNetworkMiddleware`
  refuses IP-literal URLs before anything is sent, and gives refused requests
  their error, :class:`~imgscraper.exceptions.BlockedAddressError` (reason
  ``blocked-address``), without retries.

Proxies: a request sent through a proxy (``HTTP_PROXY``/``HTTPS_PROXY``,
``meta["proxy"]``) connects to the proxy, which the operator chose, so the
proxy's own host is never refused; the target is checked only when it is an
IP literal, since the proxy resolves names itself.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, ClassVar

from scrapy.resolver import CachingHostnameResolver, CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolutionReceiver
from zope.interface import implementer

from imgscraper.exceptions import AddressRefused

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from twisted.internet.interfaces import IAddress, IHostResolution

__all__ = [
    "CATEGORIES",
    "AddressPolicy",
    "AddressGuard",
    "GuardedHostnameResolver",
    "GuardedResolver",
    "address_category",
    "is_ip_address",
]

#: The refused kinds of address, and their networks.
CATEGORIES: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = {
    "loopback": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    "private": (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("172.16.0.0/12"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("fc00::/7"),
    ),
    # Cloud metadata services (169.254.169.254, fd00:ec2::254 is private) live here.
    "link-local": (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    # Linux connects 0.0.0.0 (and the rest of 0.0.0.0/8 on some kernels) to the host itself.
    "unspecified": (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128")),
}


def address_category(address: str) -> str | None:
    """The :data:`CATEGORIES` key of an IP address, None for any other address or a host name.

    An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) counts as its IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for category, networks in CATEGORIES.items():
        if any(ip in network for network in networks):
            return category
    return None


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP address (an IPv6 one in brackets or not), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class AddressPolicy:
    """Which resolved addresses a crawl may connect to.

    Addresses outside :data:`CATEGORIES` are always allowed. An address in a
    category is allowed once a start host is in that category (a start host
    is always allowed, and allows its categories), and for hosts in
    :attr:`exempt_hosts` (proxies).
    """

    def __init__(self, start_hosts: Iterable[str] = ()):
        self.start_hosts: set[str] = set()
        #: The categories of the start hosts' addresses.
        self.allowed: set[str] = set()
        #: Hosts connected to whatever their address (the proxies in use).
        self.exempt_hosts: set[str] = set()
        #: Host -> (address, category) of the hosts last refused.
        self.refused: dict[str, tuple[str, str]] = {}
        self.add_start_hosts(start_hosts)

    def add_start_hosts(self, hosts: Iterable[str]) -> None:
        for host in hosts:
            host = host.lower()
            self.start_hosts.add(host)
            if category := address_category(host):
                self.allowed.add(category)

    def refusal(self, host: str, address: str) -> str | None:
        """The category for which connecting ``host`` at ``address`` is refused, or None when allowed."""
        host = host.lower()
        category = address_category(address)
        if category is None or category in self.allowed or host in self.exempt_hosts:
            self.refused.pop(host, None)
            return None
        if host in self.start_hosts:
            self.allowed.add(category)
            return None
        self.refused[host] = (address, category)
        return category


class AddressGuard:
    """What the guarded resolvers share: the :attr:`policy` they enforce, set by
    :class:`~imgscraper.downloadermiddlewares.privatenetworks.PrivateNetworkMiddleware`
    when the spider opens (without one every address is allowed), and :attr:`installed`,
    the instance Scrapy installed on the reactor.

    Scrapy builds the resolver once per process, from the process's settings, so
    one crawl per process is assumed.
    """

    #: The instance Scrapy installed on the reactor, if any.
    installed: ClassVar[AddressGuard | None] = None

    policy: AddressPolicy | None = None

    def install_on_reactor(self) -> None:
        super().install_on_reactor()  # type: ignore[misc]
        AddressGuard.installed = self

    def refused(self, name: str, address: str) -> str | None:
        """The category for which ``name`` may not be connected at ``address``, or None."""
        return self.policy.refusal(name, address) if self.policy is not None else None

    async def allowed_addresses(self, name: str) -> list[str]:
        """The addresses of ``name`` that may be connected to (resolving a start host teaches
        the policy its networks). Raises :class:`AddressRefused` when the policy refuses them
        all, ``DNSLookupError`` when ``name`` does not resolve."""
        raise NotImplementedError


class GuardedResolver(AddressGuard, CachingThreadedResolver):
    """Scrapy's default resolver (IPv4, ``DNS_TIMEOUT``) that refuses what its policy refuses.

    Subclasses change how names are looked up by overriding :meth:`lookup`.
    """

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        return self.lookup(name, timeout).addCallback(self._check, name)

    def lookup(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        """The address of ``name``, unchecked (cached like Scrapy's default resolver)."""
        return super().getHostByName(name, timeout)

    def _check(self, address: str, name: str) -> str:
        if category := self.refused(name, address):
            raise AddressRefused(name, address, category)
        return address

    async def allowed_addresses(self, name: str) -> list[str]:
        return [await maybe_deferred_to_future(self.getHostByName(name))]


@implementer(IResolutionReceiver)
class _AllowedAddresses:
    """Passes on to ``receiver`` the addresses of ``name`` that ``guard`` allows."""

    def __init__(self, receiver: IResolutionReceiver, name: str, guard: AddressGuard):
        self.receiver, self.name, self.guard = receiver, name, guard

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        if not self.guard.refused(self.name, getattr(address, "host", "")):
            self.receiver.addressResolved(address)

    def resolutionComplete(self) -> None:
        self.receiver.resolutionComplete()


class GuardedHostnameResolver(AddressGuard, CachingHostnameResolver):
    """Scrapy's ``getaddrinfo`` resolver (IPv4 and IPv6) that leaves out the addresses its
    policy refuses; a name left without any fails to resolve."""

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        receiver = _AllowedAddresses(resolutionReceiver, hostName, self)
        return super().resolveHostName(receiver, hostName, portNumber, addressTypes, transportSemantics)

    async def allowed_addresses(self, name: str) -> list[str]:
        addresses = _Addresses()
        self.resolveHostName(addresses, name)
        await maybe_deferred_to_future(addresses.done)
        if addresses.hosts:
            return addresses.hosts
        refused = self.policy.refused.get(name.lower()) if self.policy else None
        if refused:
            raise AddressRefused(name, *refused)
        raise DNSLookupError(f"{name} does not resolve")


@implementer(IResolutionReceiver)
class _Addresses:
    """A resolution receiver that collects the addresses, and tells when they are all in."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.done: Deferred[None] = Deferred()

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        pass

    def addressResolved(self, address: IAddress) -> None:
        self.hosts.append(getattr(address, "host", ""))

    def resolutionComplete(self) -> None:
        self.done.callback(None)
