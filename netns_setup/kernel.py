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
Namespaces are made without a fork too (nsenter.new_netns).

Connections: outside a `connections()` block every call opens its own socket and closes
it. Inside one, `ipr(name)` hands this thread one connection per namespace, opened on
first use and kept until the block ends, when all of them are closed (also when the block
ends in an exception: an open socket would keep a removed namespace alive). `up` runs in
such a block, and each of its worker threads in one of its own. A connection also
remembers the index of each link it looked up or made (`_index`): within one block the
lab's namespaces change through this layer only, and the kernel does not reuse an index
for another link (it counts them up), so the memo stays true. Requests and connections are counted
(`counters()`), so tests and benchmarks can see what a change costs.

Each `ensure_*` of an absent object costs a handful of requests, each about 1 ms of
pyroute2 on the 2-core VM: the request that makes the object (`add`, where `EEXIST`
means it was there already) and one read-back that checks every attribute (repeated,
bounded by `WAIT_S`, until the kernel shows them all).

pyroute2 0.9.7 notes: `netns.create` and requests that name another namespace run in a
forked helper process (see `config.disable_mp_signal` below; vpclab uses neither); a
veth's `mtu` and `gso_max_size` given in `peer` apply to the peer, its `state` does not;
an `IPRoute()` keeps its event loop and socket per thread, so a connection is never
used by any thread but the one that opened it.
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from pyroute2 import IPRoute, config, netns
from pyroute2.netlink.exceptions import NetlinkError

from .nsenter import NETNS_RUN_DIR, NetnsSockets, new_netns

# pyroute2 forks short-lived helpers (namespace creation, requests that name another
# namespace) and ends them with SIGTERM: they must not inherit vpclab's SIGTERM handler,
# or a helper would run the caller's rollback.
config.disable_mp_signal = True

WAIT_S = 5.0
POLL_S = 0.005
NETLINK_ROUTE = 0
NUD_PERMANENT = 0x80
IFF_UP = 0x1
REQUESTS = frozenset({"link", "addr", "route", "neigh", "link_lookup", "get_links",
                      "get_addr", "get_routes", "get_neighbours"})   # counted by Rtnl


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


class Rtnl(IPRoute):
    """A pyroute2 IPRoute on a socket of one namespace, with the link indexes it knows."""

    def __init__(self, netns: str | None):
        if netns:
            with NetnsSockets(netns) as there:
                rtnetlink = there.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                         NETLINK_ROUTE)
            super().__init__(fileno=rtnetlink.detach())
        else:
            super().__init__()
        self.indexes: dict[str, int] = {}
        self._open = True
        _count("connections")
        _count("open")

    def close(self, *args, **kwargs):
        if self._open:
            self._open = False
            _count("open", -1)
        return super().close(*args, **kwargs)

    def __getattr__(self, name: str):
        found = super().__getattr__(name)
        if name not in REQUESTS:
            return found

        def counted(*args, **kwargs):
            _count("requests")
            return found(*args, **kwargs)
        return counted


_here = threading.local()      # .cache: {(namespace, inode): Rtnl} inside connections()
_totals = {"requests": 0, "connections": 0, "open": 0}
_totals_lock = threading.Lock()


def _count(what: str, by: int = 1) -> None:
    with _totals_lock:
        _totals[what] += by


def counters() -> dict[str, int]:
    """{"requests", "connections", "open"}: rtnetlink requests sent and connections
    opened by this process so far (a caller compares two readings), and connections
    open now."""
    with _totals_lock:
        return dict(_totals)


@contextmanager
def connections() -> Iterator[None]:
    """One connection per namespace for this thread until the block ends (see the
    module docstring). Nested blocks share the outermost one's connections."""
    if getattr(_here, "cache", None) is not None:
        yield
        return
    _here.cache = {}
    try:
        yield
    finally:
        cache, _here.cache = _here.cache, None
        for conn in cache.values():
            conn.close()


def open_connections() -> list[str]:
    """The namespaces this thread's `connections()` block holds a connection to."""
    return sorted(ns or "" for ns, _ in (getattr(_here, "cache", None) or {}))


@contextmanager
def ipr(name: str | None) -> Iterator[Rtnl]:
    """An rtnetlink connection inside namespace `name` (None: the current namespace);
    this thread's cached one inside a `connections()` block."""
    cache = getattr(_here, "cache", None)
    if cache is None:
        conn = Rtnl(name)
        try:
            yield conn
        finally:
            conn.close()
        return
    key = (name, netns_inode(name) if name else None)
    conn = cache.get(key)
    if conn is None:
        conn = cache[key] = Rtnl(name)
    yield conn


def ensure_netns(name: str, mark: str) -> bool:
    """Named namespace `name`, its `lo` up and carrying altname `mark`. True if created."""
    created = False
    if not netns_exists(name):
        try:
            new_netns(name)
        except FileExistsError:
            pass
        except OSError as e:
            raise KernelError(f"namespace {name}: {e}") from e
        created = True
    _wait(f"namespace {name}", lambda: netns_exists(name))
    with ipr(name) as s:
        lo = get_link(s, name, "lo")
        if mark not in altnames(lo):
            _add_altname(s, lo["index"], mark, f"lo in {name}")
        if not lo["flags"] & IFF_UP:
            s.link("set", index=lo["index"], state="up")
        _wait(f"lo in {name} up, with altname {mark}",
              lambda: _shows(s, name, "lo", mark=mark))
    return created


def netns_mark(name: str) -> list[str]:
    """Altnames on `lo` of namespace `name` ([] if it has none or is gone)."""
    try:
        with ipr(name) as s:
            return altnames(get_link(s, name, "lo"))
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


def get_link(s: Rtnl, ns: str | None, ifname: str):
    """The link `ifname` of `s`'s namespace (raises KernelError if there is none); its
    index is remembered."""
    try:
        link = s.link("get", ifname=ifname)[0]
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            raise KernelError(f"no link {ifname} in namespace {ns}") from e
        raise
    s.indexes[ifname] = link["index"]
    return link


def _wait_link(s: Rtnl, ns: str | None, ifname: str):
    """The link `ifname`, once the kernel shows it (within `WAIT_S`)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return get_link(s, ns, ifname)
        except KernelError:
            if time.monotonic() > deadline:
                raise KernelError(f"{ifname} in {ns} did not appear within "
                                  f"{WAIT_S:.0f} s") from None
            time.sleep(POLL_S)


def _absent(s: Rtnl, ifname: str) -> bool:
    try:
        s.link("get", ifname=ifname)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return True
        raise
    return False


def _add_altname(s: Rtnl, index: int, name: str, what: str) -> None:
    try:
        s.link("property_add", index=index, altname=name)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise KernelError(f"altname {name} on {what}: {e}") from e


def _gso(link) -> int:
    size = link.get_attr("IFLA_GSO_MAX_SIZE")
    return 1 << 32 if size is None else size


def _shows(s: Rtnl, ns: str | None, ifname: str, mark: str | None = None,
           mtu: int | None = None, gso_max_size: int | None = None) -> bool:
    """Whether the kernel shows `ifname` up, with altname `mark`, `mtu` and a GSO size
    of at most `gso_max_size` where given."""
    try:
        link = get_link(s, ns, ifname)
    except KernelError:
        return False
    return bool(link["flags"] & IFF_UP) and (mark is None or mark in altnames(link)) \
        and (mtu is None or link.get("mtu") == mtu) \
        and (gso_max_size is None or _gso(link) <= gso_max_size)


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
        for ifname in [n for n, i in s.indexes.items() if i == index]:
            del s.indexes[ifname]


def ensure_veth(ns_a: str, if_a: str, mark_a: str, ns_b: str, if_b: str, mark_b: str,
                mtu: int, gso_max_size: int | None = None) -> bool:
    """A veth `if_a`@ns_a ⇄ `if_b`@ns_b, both ends up, marked, with `mtu` and, if
    `gso_max_size` is given, a GSO size no larger on both ends (as
    offload.cap_gso_size, but set in the request that makes the veth). True if created.

    Created from inside ns_a with the peer put straight into ns_b: it never exists in
    the root namespace, not even for a moment.
    """
    created = False
    with ipr(ns_a) as a, ipr(ns_b) as b:
        if _absent(a, if_a):
            if not _absent(b, if_b):
                raise KernelError(f"{if_b} already exists in namespace {ns_b} "
                                  f"without its peer {if_a} in {ns_a}")
            gso = {} if gso_max_size is None else {"gso_max_size": gso_max_size}
            try:
                a.link("add", ifname=if_a, kind="veth", mtu=mtu, state="up", **gso,
                       peer={"ifname": if_b, "net_ns_fd": ns_b, "mtu": mtu, **gso})
            except NetlinkError as e:
                raise KernelError(f"veth {if_a} ({ns_a}) ⇄ {if_b} ({ns_b}): {e}") from e
            created = True
        for s, ifname, mark, ns in ((a, if_a, mark_a, ns_a), (b, if_b, mark_b, ns_b)):
            link = _wait_link(s, ns, ifname)
            if mark not in altnames(link):
                _add_altname(s, link["index"], mark, f"{ifname} in {ns}")
            change: dict = {}
            if link.get("mtu") != mtu or not link["flags"] & IFF_UP:
                change.update(mtu=mtu, state="up")
            if gso_max_size is not None and _gso(link) > gso_max_size:
                change["gso_max_size"] = gso_max_size
            if change:
                s.link("set", index=link["index"], **change)
            _wait(f"{ifname} in {ns} up, with altname {mark}, MTU {mtu}"
                  + (f", GSO at most {gso_max_size}" if gso_max_size else ""),
                  lambda s=s, ns=ns, ifname=ifname, mark=mark: _shows(
                      s, ns, ifname, mark, mtu, gso_max_size))
    return created


def _index(s: Rtnl, ns: str | None, ifname: str) -> int:
    """The index of `ifname` (remembered by the connection, see the module docstring)."""
    index = s.indexes.get(ifname)
    return index if index is not None else get_link(s, ns, ifname)["index"]


def link_index(ns: str, ifname: str) -> int:
    with ipr(ns) as s:
        return _index(s, ns, ifname)


# -- addresses and routes --------------------------------------------------------------
def _add(what: str, send: Callable[[], object], present: Callable[[], bool],
         other: str) -> bool:
    """Send the request that adds `what`, then wait until `present()`; True if added.
    EEXIST means it was there already, which `present()` must confirm (else `what`
    exists `other`: an error naming the conflict, not a wait that times out)."""
    try:
        send()
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise KernelError(f"{what}: {e}") from e
        if not present():
            raise KernelError(f"{what} exists {other}") from e
        return False
    _wait(what, present)
    return True


def ensure_address(ns: str, ifname: str, address: str, prefixlen: int) -> bool:
    """`address/prefixlen` on `ifname` in `ns`. True if added."""
    with ipr(ns) as s:
        idx = _index(s, ns, ifname)

        def present() -> bool:
            return any(a.get("address") == address and a["prefixlen"] == prefixlen
                       for a in s.get_addr(index=idx, family=2))
        return _add(f"address {address}/{prefixlen} on {ifname} in {ns}",
                    lambda: s.addr("add", index=idx, address=address, prefixlen=prefixlen),
                    present, f"with another prefix length than /{prefixlen}")


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
        return _add(f"route {dst} in {ns}",
                    lambda: s.route("add", dst=net, dst_len=plen_i, **kw), present,
                    "with another next hop than " + " ".join(
                        x for x in (ifname, gateway and f"via {gateway}") if x))


def link_exists(ns: str, ifname: str) -> bool:
    """Whether namespace `ns` exists and holds a link `ifname`."""
    if not netns_exists(ns):
        return False
    with ipr(ns) as s:
        return not _absent(s, ifname)


def link_mac(ns: str, ifname: str) -> str:
    """The MAC address of `ifname` in namespace `ns`."""
    with ipr(ns) as s:
        return get_link(s, ns, ifname).get_attr("IFLA_ADDRESS")


def link_stats(ns: str, ifname: str) -> dict[str, int]:
    """The 64-bit counters of `ifname` in namespace `ns` (rx_packets, tx_bytes, …)."""
    with ipr(ns) as s:
        return dict(get_link(s, ns, ifname).get_attr("IFLA_STATS64"))


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
