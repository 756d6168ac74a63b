"""Which network addresses are *internal*: resources a policy must name explicitly (SPEC §8).

An ``http.request`` to a host that is, or resolves to, a loopback, private,
link-local, unspecified, multicast or reserved address is allowed only by a
rule that names the host (``Security.check(..., explicit=True)``): never by a
glob such as ``*`` or ``*.corp.example``, never by an owner's default.

>>> is_internal("127.0.0.1"), is_internal("::ffff:10.0.0.1"), is_internal("93.184.216.34")
(True, True, False)
>>> is_ip("::1"), is_ip("example.com")
(True, False)
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_internal", "is_ip"]


def is_ip(host: str) -> bool:
    """True when ``host`` is an IPv4 or IPv6 address literal (a zone id allowed)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_internal(address: str) -> bool:
    """True for an address a host glob must not reach (an IPv4-mapped IPv6 address counts as its IPv4)."""
    ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_multicast
            or ip.is_reserved or not ip.is_global)
