"""The SSRF guard of webhook targets: a callback URL is parsed once by one strict
grammar, its host resolved once, every address must be public unless private
targets are allowed, and the connection goes to the very address that was checked."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kinoit.errors import Forbidden, InvalidParameter

# ---------------------------------------------------------------------- SSRF
Resolver = Callable[[str, int], Sequence[str]]

# The only URLs accepted: scheme, a plain host (DNS name, dotted IPv4 or bracketed
# IPv6), an optional decimal port and an optional path and query of visible ASCII.
# No userinfo, backslash, fragment, whitespace or percent-encoded host: every part
# any HTTP library could read differently from this grammar is refused outright.
_URL = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<target>/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URL_CHARS = 2048
# NAT64 prefixes (RFC 6052, RFC 8215): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class CallbackTarget:
    """A callback URL parsed once: what was checked is exactly what is connected to.

    ``address`` is the resolved IP the connection must go to (pinned: no second DNS
    lookup between the check and the connect); ``host`` goes in the Host header and
    the TLS server name; ``target`` is the request line's path and query.
    """

    url: str
    scheme: str
    host: str
    port: int
    target: str
    address: str = ""


def parse_callback_url(url: object) -> CallbackTarget:
    """Parse ``url`` by the strict grammar above (InvalidParameter ``callback_url``);
    no DNS lookup. The standard library's reading must agree on scheme, host and port."""

    def bad(why: str) -> InvalidParameter:
        return InvalidParameter("callback_url", why)

    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise bad(f"expected an http(s) URL of at most {MAX_URL_CHARS} characters")
    if "\\" in url:
        raise bad("backslashes are not allowed in a callback URL")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise bad("only visible ASCII is allowed (no spaces, control or non-ASCII characters)")
    if "#" in url:
        raise bad("a fragment is not allowed in a callback URL")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise bad(f"scheme must be http or https, got {url[:80]!r}")
    if scheme != scheme.lower():
        raise bad("write the scheme in lower case")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        raise bad("userinfo (user:password@) is not allowed in a callback URL")
    match = _URL.fullmatch(url)
    if match is None or _PERCENT.search(url):
        raise bad(f"malformed URL {url[:80]!r}")
    host = _check_host(match.group("host"))
    port = int(match.group("port")) if match.group("port") else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} out of range")
    target = match.group("target") or "/"
    try:  # the differential check: the other common reading must see the same thing
        other = urllib.parse.urlsplit(url)
        other_port = other.port or (443 if other.scheme == "https" else 80)
    except ValueError as exc:
        raise bad(f"malformed URL: {exc}") from None
    other_host = (other.hostname or "").lower()
    if host.startswith("["):
        with contextlib.suppress(ValueError):
            other_host = f"[{ipaddress.IPv6Address(other_host)}]"
    if (other.scheme, other_host, other_port) != (scheme, host, port):
        raise bad("URL parses ambiguously; refused")
    return CallbackTarget(url=url, scheme=scheme, host=host, port=port, target=target)


def _check_host(raw: str) -> str:
    """A lower-cased DNS name, a canonical dotted IPv4, or a bracketed IPv6 without zone."""
    if raw.startswith("["):
        try:
            ip6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise InvalidParameter("callback_url", f"not an IPv6 address: {raw}") from None
        return f"[{ip6}]"
    host = raw.lower()
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidParameter("callback_url", f"not a valid host name: {raw!r}")
    if labels[-1].isdigit():
        # numeric hosts must be exactly a dotted quad: "127.1", "2130706433" or
        # "0177.0.0.1" mean loopback to some resolvers and a name to others
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidParameter(
                "callback_url", f"numeric host {raw!r} is not a dotted-quad IPv4 address"
            ) from None
        if str(ip4) != host:
            raise InvalidParameter("callback_url", f"non-canonical IPv4 address {raw!r}")
    return host


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (one DNS lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(address: str) -> bool:
    if "%" in address:  # a scoped (link-local) IPv6 address
        return False
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not _is_public(str(inner)):
            return False
        if ip in _IPV4_COMPATIBLE:
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve_callback(
    url: str, allow_private: bool = False, resolve: Resolver = resolve_host
) -> CallbackTarget:
    """Parse ``url`` once, resolve its host once and return the target pinned to the
    checked address.

    InvalidParameter (field ``callback_url``) for a URL outside the strict grammar
    or a host that does not resolve; Forbidden when any resolved address is private,
    loopback, link-local, multicast, reserved or unspecified (IPv4 embedded in IPv6
    included) and ``allow_private`` is false.
    """
    target = parse_callback_url(url)
    host = target.host.strip("[]")
    try:
        addresses = [str(a) for a in resolve(host, target.port)]
    except (OSError, UnicodeError) as exc:
        raise InvalidParameter("callback_url", f"cannot resolve host {host!r}: {exc}") from None
    if not addresses:
        raise InvalidParameter("callback_url", f"host {host!r} has no address")
    for address in addresses:
        try:
            public = _is_public(address)
        except ValueError:
            raise InvalidParameter(
                "callback_url", f"host {host!r} resolved to {address!r}, not an IP address"
            ) from None
        if not public and not allow_private:
            raise Forbidden(
                f"callback_url: {host} resolves to non-public address {address}; refused"
            )
    return CallbackTarget(
        url=target.url,
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        target=target.target,
        address=addresses[0],
    )


def check_callback_url(
    url: str, allow_private: bool = False, resolve: Resolver = resolve_host
) -> str:
    """Return ``url`` when it is a safe webhook target (see :func:`resolve_callback`)."""
    return resolve_callback(url, allow_private, resolve).url
