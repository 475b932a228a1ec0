"""Idempotent kernel objects through pyroute2: namespaces, veths, addresses, routes.

Every `ensure_*` makes its object present *and waits until the kernel shows it*: if it
is already there (same name, same attributes) nothing is sent; if not it is created
and then read back, polling for at most `WAIT_S` (bounded so a lost request turns into
an error naming the object instead of a hang). `remove_*` are the inverse and accept an
absent object.

Nothing here touches the root namespace: a veth is created by a socket opened *inside*
the first namespace, with its peer placed straight into the second one
(`peer={'net_ns_fd': …}`), so neither end ever appears in the root namespace. Every link
gets an ownership mark, an interface altname (`vpclab.<lab>.…`, see
dataplane/model/names.py); `marked_links()` and `netns_mark()` are how cleanup
recognises what is ours and leaves everything else alone.

A socket "inside" a namespace (`ipr()`) is an rtnetlink socket made there by
nsenter.NetnsSockets (setns, socket(), setns back, in the calling thread) and handed to
pyroute2 as a file descriptor: a socket keeps the namespace it was made in, whichever
thread uses it later. pyroute2's own `IPRoute(netns=NAME)` forks a helper for each
socket instead (about 30 ms, against 2 ms for a whole `ipr()` request here), which
matters to callers that open many (a benchmark's topology, counters read in a loop).

pyroute2 0.9.7 notes: namespace creation and requests that name another namespace run
in a forked helper process (see `config.disable_mp_signal` below); a veth's `mtu`
applies to the first end only, so the peer's MTU is set separately; an `IPRoute()` made
without a file descriptor opens its socket lazily, per thread, in the namespace of the
thread that first uses it, so it must never be created in one thread and used in another.
"""
from __future__ import annotations

import errno
import os
import socket
import time
from contextlib import contextmanager
from typing import Iterator

from pyroute2 import IPRoute, config, netns
from pyroute2.netlink.exceptions import NetlinkError

from .nsenter import NETNS_RUN_DIR, NetnsSockets

# pyroute2 forks short-lived helpers (namespace creation, requests that name another
# namespace) and ends them with SIGTERM: they must not inherit vpclab's SIGTERM handler,
# or a helper would run the caller's rollback.
config.disable_mp_signal = True

WAIT_S = 5.0
POLL_S = 0.005
NETLINK_ROUTE = 0
NUD_PERMANENT = 0x80


class KernelError(RuntimeError):
    """A kernel object could not be made or did not show up; says which."""


def _wait(what: str, present) -> None:
    deadline = time.monotonic() + WAIT_S
    while not present():
        if time.monotonic() > deadline:
            raise KernelError(f"{what} did not appear within {WAIT_S:.0f} s")
        time.sleep(POLL_S)


# -- namespaces ------------------------------------------------------------------------
def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_RUN_DIR, name))


def netns_inode(name: str) -> int | None:
    try:
        st = os.stat(os.path.join(NETNS_RUN_DIR, name))
    except OSError:
        return None
    return st.st_ino


@contextmanager
def ipr(name: str | None) -> Iterator[IPRoute]:
    """An rtnetlink socket inside namespace `name` (None: the current namespace)."""
    if name:
        with NetnsSockets(name) as there:
            rtnetlink = there.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        sock = IPRoute(fileno=rtnetlink.detach())
    else:
        sock = IPRoute()
    try:
        yield sock
    finally:
        sock.close()


def ensure_netns(name: str, mark: str) -> bool:
    """Named namespace `name`, its `lo` up and carrying altname `mark`. True if created."""
    created = False
    if not netns_exists(name):
        try:
            netns.create(name)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise KernelError(f"namespace {name}: {e}") from e
        created = True
    _wait(f"namespace {name}", lambda: name in netns.listnetns())
    with ipr(name) as s:
        lo = s.link_lookup(ifname="lo")[0]
        _ensure_altname(s, lo, mark, f"lo in {name}")
        s.link("set", index=lo, state="up")
    return created


def netns_mark(name: str) -> list[str]:
    """Altnames on `lo` of namespace `name` ([] if it has none or is gone)."""
    try:
        with ipr(name) as s:
            return altnames(s.get_links(s.link_lookup(ifname="lo")[0])[0])
    except Exception:  # noqa: BLE001 - a namespace that vanished has no mark
        return []


def remove_netns(name: str) -> bool:
    """Delete namespace `name` if present (its links go with it). True if it existed."""
    if not netns_exists(name):
        return False
    try:
        netns.remove(name)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise KernelError(f"namespace {name}: {e}") from e
    _wait(f"removal of namespace {name}", lambda: not netns_exists(name))
    return True


# -- links -----------------------------------------------------------------------------
def altnames(msg) -> list[str]:
    props = msg.get("IFLA_PROP_LIST")
    if not props:
        return []
    return [v for k, v in props.get("attrs", []) if k == "IFLA_ALT_IFNAME"]


def _ensure_altname(s: IPRoute, index: int, name: str, what: str) -> None:
    if name in altnames(s.get_links(index)[0]):
        return
    try:
        s.link("property_add", index=index, altname=name)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise KernelError(f"altname {name} on {what}: {e}") from e
    _wait(f"altname {name} on {what}", lambda: name in altnames(s.get_links(index)[0]))


def marked_links(name: str | None, prefix: str) -> list[tuple[int, str, list[str]]]:
    """(index, ifname, altnames) of links in namespace `name` with an altname `prefix…`."""
    out = []
    with ipr(name) as s:
        for link in s.get_links():
            marks = [a for a in altnames(link) if a.startswith(prefix)]
            if marks:
                out.append((link["index"], link.get("ifname"), marks))
    return out


def delete_link(name: str | None, index: int) -> None:
    with ipr(name) as s:
        try:
            s.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise


def ensure_veth(ns_a: str, if_a: str, mark_a: str, ns_b: str, if_b: str, mark_b: str,
                mtu: int) -> bool:
    """A veth `if_a`@ns_a ⇄ `if_b`@ns_b, both ends up, marked, with `mtu`. True if created.

    Created from inside ns_a with the peer put straight into ns_b: it never exists in
    the root namespace, not even for a moment.
    """
    created = False
    with ipr(ns_a) as a, ipr(ns_b) as b:
        if not a.link_lookup(ifname=if_a):
            if b.link_lookup(ifname=if_b):
                raise KernelError(f"{if_b} already exists in namespace {ns_b} "
                                  f"without its peer {if_a} in {ns_a}")
            try:
                a.link("add", ifname=if_a, kind="veth", mtu=mtu,
                       peer={"ifname": if_b, "net_ns_fd": ns_b})
            except NetlinkError as e:
                raise KernelError(f"veth {if_a} ({ns_a}) ⇄ {if_b} ({ns_b}): {e}") from e
            created = True
        _wait(f"{if_a} in {ns_a}", lambda: bool(a.link_lookup(ifname=if_a)))
        _wait(f"{if_b} in {ns_b}", lambda: bool(b.link_lookup(ifname=if_b)))
        for s, ifname, mark, ns in ((a, if_a, mark_a, ns_a), (b, if_b, mark_b, ns_b)):
            idx = s.link_lookup(ifname=ifname)[0]
            _ensure_altname(s, idx, mark, f"{ifname} in {ns}")
            link = s.get_links(idx)[0]
            if link.get("mtu") != mtu:
                s.link("set", index=idx, mtu=mtu)
            s.link("set", index=idx, state="up")
            _wait(f"{ifname} in {ns} up", lambda s=s, idx=idx: s.get_links(idx)[0].get(
                "flags", 0) & 1)
    return created


def _index(s: IPRoute, ns: str, ifname: str) -> int:
    found = s.link_lookup(ifname=ifname)
    if not found:
        raise KernelError(f"no link {ifname} in namespace {ns}")
    return found[0]


def link_index(ns: str, ifname: str) -> int:
    with ipr(ns) as s:
        return _index(s, ns, ifname)


# -- addresses and routes --------------------------------------------------------------
def ensure_address(ns: str, ifname: str, address: str, prefixlen: int) -> bool:
    """`address/prefixlen` on `ifname` in `ns`. True if added."""
    with ipr(ns) as s:
        idx = _index(s, ns, ifname)

        def present() -> bool:
            return any(a.get("address") == address and a["prefixlen"] == prefixlen
                       for a in s.get_addr(index=idx, family=2))
        if present():
            return False
        try:
            s.addr("add", index=idx, address=address, prefixlen=prefixlen)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise KernelError(f"address {address}/{prefixlen} on {ifname} in {ns}: "
                                  f"{e}") from e
        _wait(f"address {address}/{prefixlen} on {ifname} in {ns}", present)
        return True


def ensure_route(ns: str, dst: str, ifname: str | None = None,
                 gateway: str | None = None) -> bool:
    """A main-table route to `dst` (CIDR) out of `ifname` and/or via `gateway`."""
    net, _, plen = dst.partition("/")
    plen_i = int(plen or 32)
    with ipr(ns) as s:
        kw: dict = {}
        if ifname:
            kw["oif"] = _index(s, ns, ifname)
        if gateway:
            kw["gateway"] = gateway

        def present() -> bool:
            for r in s.get_routes(family=2, table=254):
                if r["dst_len"] != plen_i:
                    continue
                if plen_i and r.get("dst") != net:
                    continue
                if gateway and r.get("gateway") != gateway:
                    continue
                if "oif" in kw and r.get("oif") != kw["oif"]:
                    continue
                return True
            return False
        if present():
            return False
        try:
            s.route("add", dst=net, dst_len=plen_i, **kw)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise KernelError(f"route {dst} in {ns}: {e}") from e
        _wait(f"route {dst} in {ns}", present)
        return True


def link_exists(ns: str, ifname: str) -> bool:
    """Whether namespace `ns` exists and holds a link `ifname`."""
    if not netns_exists(ns):
        return False
    with ipr(ns) as s:
        return bool(s.link_lookup(ifname=ifname))


def link_mac(ns: str, ifname: str) -> str:
    """The MAC address of `ifname` in namespace `ns`."""
    with ipr(ns) as s:
        return s.get_links(_index(s, ns, ifname))[0].get_attr("IFLA_ADDRESS")


def link_stats(ns: str, ifname: str) -> dict[str, int]:
    """The 64-bit counters of `ifname` in namespace `ns` (rx_packets, tx_bytes, …)."""
    with ipr(ns) as s:
        return dict(s.get_links(_index(s, ns, ifname))[0].get_attr("IFLA_STATS64"))


# -- neighbours ------------------------------------------------------------------------
def ensure_neighbour(ns: str, ifname: str, address: str, mac: str) -> bool:
    """A permanent ARP entry `address` → `mac` on `ifname` in `ns`. True if written."""
    with ipr(ns) as s:
        index = _index(s, ns, ifname)

        def present() -> bool:
            return any(n.get("dst") == address and n.get("lladdr") == mac.lower()
                       and n["state"] == NUD_PERMANENT
                       for n in s.get_neighbours(ifindex=index, family=2))
        if present():
            return False
        try:
            s.neigh("replace", dst=address, lladdr=mac, state=NUD_PERMANENT, ifindex=index)
        except NetlinkError as e:
            raise KernelError(f"neighbour {address} ({mac}) on {ifname} in {ns}: {e}") from e
        _wait(f"neighbour {address} on {ifname} in {ns}", present)
        return True
