"""The forwarder spec as typed, frozen dataclasses: the one contract between the lab
(compile/ builds it) and the forwarder (forwarder/spec.py applies it, daemon.py and
healthd.py run it).

On the wire and on disk a spec is JSON, exactly as forwarder/spec.py's docstring shows:
the lab writes it to its state directory and sends it over the control socket, tests and
bench/e2e write it by hand. `ForwarderSpec.from_json(doc)` reads that JSON once, at the
edge (the `--spec` file, the control socket's `apply`), and refuses anything it cannot
use with a `SpecError` that names the field's path and what is wrong with it:

    services[1].backends[0].ip: '10.0.1.300' is not an IPv4 address
    ports[0]: unknown field 'adress'; known: id, name, ifname, mac, peer_mac, addrs, security_groups
    services[0]: 'out_port' is missing

`to_json()` writes it back. A field is written when it is required, when its value is
not its default, or when the JSON it was read from had it: so a spec read from JSON is
written back identically, keys in the same order, and a spec the compilers build leaves
out what is at its default. Lists become tuples, so a spec is hashable and can be
compared as a whole; that comparison ignores which defaults were written out.

What the parts are: a `ForwarderPort` (an ENI, the health port or a link's attachment)
with its `SecurityGroups` of `SgRule`s; services, one class per kind, told apart by the
JSON's "kind" (absent: "privatelink") — a `PrivateLinkService` is a listener with
`Backend`s, a `VpcNatService` a VPC link with `LinkEni`s and `LinkRoute`s; a
`TargetCheck` is one NLB node's health check of one target, with its `HealthCheck`
settings (ELB's, AWS-FACTS §2); `IoSettings` are the forwarder's ring geometry and
loop scheduling. The engine takes `Backend`, `SgRule`, `LinkEni` and `LinkRoute` as
they are (forwarder/engine.py imports them from here).
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Union


class SpecError(ValueError):
    """A spec that cannot be used: `path` is the field's place in the JSON
    (`services[2].enis[0].ip`), `problem` what is wrong with it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path, self.problem = path, problem

    def within(self, prefix: str) -> SpecError:
        """The same error, its path seen from `prefix` (the object it is in)."""
        if not prefix:
            return self
        joiner = "" if self.path.startswith("[") or not self.path else "."
        return SpecError(f"{prefix}{joiner}{self.path}", self.problem)


# ---- the value types, with what they must be ---------------------------------------------

def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv4_network(text: str) -> bool:
    try:
        ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return False
    return True


_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")

# Annotated[str, what it must be (for the error), the check]
Address = Annotated[str, "an IPv4 address", _is_ipv4]
Network = Annotated[str, "an IPv4 CIDR", _is_ipv4_network]
Mac = Annotated[str, "a MAC address like 02:00:00:00:00:01", lambda t: bool(_MAC.fullmatch(t))]
Count = Annotated[int, "a non-negative integer", lambda n: n >= 0]
# What a PROXY v2 header's TLV 0xEA carries (native/hp_engine.h: HP_PROXY_VPCE_ID_MAX).
VpceId = Annotated[str, "an endpoint ID of 1-64 printable ASCII characters like vpce-0a1b2c3d4e5f67890",
                   lambda t: 0 < len(t) <= 64 and all("!" <= ch <= "~" for ch in t)]


def _parse(tp: Any, value: Any, path: str) -> Any:
    """`value` (JSON) as type `tp`, or a SpecError naming `path`."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, what, check = typing.get_args(tp)[:3]
        parsed = _parse(base, value, path)
        if not check(parsed):
            raise SpecError(path, f"{value!r} is not {what}")
        return parsed
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(options) > 1:             # services: told apart by their "kind"
            try:
                return _service_from_json(value)
            except SpecError as exc:
                raise exc.within(path) from None
        return _parse(options[0], value, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise SpecError(path, f"{value!r} is not a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SpecError(path, f"{value!r} is not a list of {len(args)} items")
        return tuple(_parse(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if isinstance(tp, type) and issubclass(tp, Record):
        try:
            return tp.from_json(value)
        except SpecError as exc:
            raise exc.within(path) from None
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"{value!r} is not true or false")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(path, f"{value!r} is not an integer")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"{value!r} is not a string")
        return value
    raise TypeError(f"no JSON reading for {tp!r}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    """A JSON object of the spec: its fields are the dataclass's (minus `json_keys`, the
    keys of the JSON it was read from, in their order, so that it is written back as it
    was read; not part of comparisons)."""
    json_keys: tuple[str, ...] = field(default=(), compare=False, repr=False, kw_only=True)

    KIND: ClassVar[str | None] = None          # a service's "kind", else None
    KIND_WRITTEN: ClassVar[bool] = False      # written even when the JSON had none

    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "json_keys"]

    @classmethod
    def from_json(cls, doc: Any) -> Any:
        """Reads and checks `doc`; a SpecError names the first field that is wrong."""
        if not isinstance(doc, dict):
            raise SpecError("", f"{doc!r} is not an object")
        hints = _type_hints(cls)
        fields = cls._fields()
        known = [f.name for f in fields] + (["kind"] if cls.KIND else [])
        unknown = [k for k in doc if k not in known]
        if unknown:
            raise SpecError("", f"unknown field{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        values = {}
        for f in fields:
            if f.name in doc:
                values[f.name] = _parse(hints[f.name], doc[f.name], f.name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError("", f"'{f.name}' is missing")
        try:
            return cls(**values, json_keys=tuple(doc))
        except SpecError:
            raise
        except ValueError as exc:     # a check across fields, in __post_init__
            raise SpecError("", str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object: required fields, fields not at their default, and fields the
        JSON it was read from had; in the order read, then the dataclass's order."""
        fields = {f.name: f for f in self._fields()}
        order = list(dict.fromkeys([*self.json_keys, *(["name", "kind"] if self.KIND else []),
                                    *fields]))
        out: dict[str, Any] = {}
        for key in order:
            if key == "kind":
                if self.KIND and (self.KIND_WRITTEN or "kind" in self.json_keys):
                    out["kind"] = self.KIND
                continue
            f = fields[key]
            value = getattr(self, key)
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            if default is dataclasses.MISSING or key in self.json_keys or value != default:
                out[key] = _dump(value)
        return out


# ---- ports -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SgRule(Record):
    """An allow rule: protocol ('tcp', 'udp', 'icmp', 'all'), port range (ICMP: type
    range), and a CIDR the peer address must be in."""
    protocol: str
    cidr: Network = "0.0.0.0/0"
    port_lo: int = 0
    port_hi: int = 65535


@dataclass(frozen=True)
class SecurityGroups(Record):
    """A port's filters of new flows, by direction: None, no filtering; a tuple of
    rules (empty: nothing), allow-only."""
    ingress: tuple[SgRule, ...] | None = None
    egress: tuple[SgRule, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class ForwarderPort(Record):
    """One port of the forwarder: its MAC, the addresses it answers ARP for, the MAC of
    whatever is at the other end (the VPC router), its interface in the Hyperplane
    namespace (needed by the daemon, not by an engine in a test) and its filters."""
    id: Count
    name: str | None = None
    ifname: str | None = None
    mac: Mac
    peer_mac: Mac | None = None
    addrs: tuple[Address, ...] = ()
    security_groups: SecurityGroups = SecurityGroups()

    @property
    def label(self) -> str:
        return self.name or str(self.id)


# ---- services ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Backend(Record):
    """A target of a listener: address, port, weight (0: no new flows)."""
    ip: Address
    port: int
    weight: int = 1


@dataclass(frozen=True, kw_only=True)
class PrivateLinkService(Record):
    """A listener (kind "privatelink"): new flows to (vip, vport, proto) on `in_port` go
    out of `out_port` from (snat_ip, a port of `snat_ports`) to one of `backends`.
    `preferred` are the (ip, port) of the backends in the NLB node's own AZ,
    `health_group` the node's view of the target group whose health picks them.
    `proxy_protocol_v2` puts a PROXY v2 header in front of each flow's first bytes
    toward its target (the target group's attribute), carrying `vpce_id` (the
    interface endpoint the flows come through) when given."""
    KIND: ClassVar[str] = "privatelink"
    # Fields that identify a listener: if any differs, the old service and its flows go.
    IDENTITY: ClassVar[tuple[str, ...]] = ("in_port", "out_port", "vip", "vport", "proto",
                                           "snat_ip", "snat_ports", "mtu", "mss_clamp",
                                           "idle_timeout_s", "proxy_protocol_v2", "vpce_id")
    name: str
    health_group: str | None = None
    in_port: Count
    out_port: Count
    vip: Address
    vport: int
    proto: str = "tcp"
    snat_ip: Address | None = None
    snat_ports: tuple[int, int] = (0, 0)
    idle_timeout_s: Count = 0
    mtu: Count = 0
    mss_clamp: Count = 0
    rst_on_miss: bool = False
    hash_tcp_seq: bool = False
    disabled: bool = False
    proxy_protocol_v2: bool = False
    vpce_id: VpceId | None = None
    backends: tuple[Backend, ...] = ()
    preferred: tuple[tuple[Address, int], ...] = ()

    def __post_init__(self) -> None:
        if self.proxy_protocol_v2 and self.proto != "tcp":
            raise SpecError("proxy_protocol_v2", f"PROXY protocol v2 needs proto 'tcp', "
                                                 f"not {self.proto!r}")


@dataclass(frozen=True)
class LinkEni(Record):
    """One ENI of a VPC link: its port and its address (the flows' source there)."""
    port: Count
    ip: Address


@dataclass(frozen=True)
class LinkRoute(Record):
    """Destinations in `cidr` (a customer subnet) leave from the link's ENI number `eni`."""
    cidr: Network
    eni: Count


@dataclass(frozen=True)
class VpcNatService(Record):
    """A VPC link (kind "vpc_nat"): new flows from `in_port` toward `prefixes` leave from
    one of `enis` (the one the longest covering route names, else one by hash) with its
    address as their source. Everything but `disabled` identifies it."""
    KIND: ClassVar[str] = "vpc_nat"
    KIND_WRITTEN: ClassVar[bool] = True
    IDENTITY: ClassVar[tuple[str, ...]] = ("in_port", "prefixes", "enis", "routes", "protocols",
                                           "snat_ports", "idle_timeout_s", "mtu", "mss_clamp")
    name: str
    in_port: Count
    prefixes: tuple[Network, ...]
    enis: tuple[LinkEni, ...]
    routes: tuple[LinkRoute, ...] = ()
    protocols: tuple[str, ...] = ("tcp", "udp")
    snat_ports: tuple[int, int] = (0, 0)
    idle_timeout_s: Count = 0
    mtu: Count = 0
    mss_clamp: Count = 0
    disabled: bool = False


Service = Union[PrivateLinkService, VpcNatService]
SERVICE_KINDS: dict[str, type[Record]] = {c.KIND: c for c in (PrivateLinkService, VpcNatService)}


def service_identity(svc: Service) -> tuple:
    """What identifies a service in the engine: its kind and its IDENTITY fields. Two
    services with the same identity are one, whose flows survive a change of the rest."""
    return (svc.KIND, *(getattr(svc, name) for name in svc.IDENTITY))


def _service_from_json(doc: Any) -> Service:
    if not isinstance(doc, dict):
        return PrivateLinkService.from_json(doc)     # refused: not an object
    kind = doc.get("kind", PrivateLinkService.KIND)
    cls = SERVICE_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SpecError("kind", f"unknown kind {kind!r}; use one of {', '.join(SERVICE_KINDS)}")
    return cls.from_json(doc)


# ---- health checks -----------------------------------------------------------------------

HEALTH_CHECK_RANGES = {"interval": (5, 300), "timeout": (2, 120), "healthy_threshold": (2, 10),
                       "unhealthy_threshold": (2, 10)}
HEALTH_CHECK_PROTOCOLS = ("TCP", "HTTP", "HTTPS")


@dataclass(frozen=True)
class HealthCheck(Record):
    """A target group's health check settings, ELB's defaults and ranges (AWS-FACTS §2)."""
    protocol: str = "TCP"
    interval: int = 30
    timeout: int = 0                 # 0: ELB's default for the protocol
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    path: str = "/"
    matcher: str = "200-399"
    port: int | None = None          # None: the traffic port

    def __post_init__(self) -> None:
        if self.protocol not in HEALTH_CHECK_PROTOCOLS:
            raise SpecError("protocol", f"{self.protocol!r} is not one of "
                                        f"{', '.join(HEALTH_CHECK_PROTOCOLS)}")
        for name, (lo, hi) in HEALTH_CHECK_RANGES.items():
            value = self.effective_timeout if name == "timeout" else getattr(self, name)
            if not lo <= value <= hi:
                raise SpecError(name, f"{value} is outside {lo}-{hi}")
        self.matches(200)  # checks the matcher

    @property
    def effective_timeout(self) -> int:
        """ELB: 10 s for TCP and HTTPS, 6 s for HTTP, unless set."""
        return self.timeout or (6 if self.protocol == "HTTP" else 10)

    def matches(self, status: int) -> bool:
        """HTTP matcher: '200', '200,302' or '200-399'."""
        try:
            for part in self.matcher.split(","):
                lo, _, hi = part.strip().partition("-")
                if int(lo) <= status <= int(hi or lo):
                    return True
        except ValueError:
            raise SpecError("matcher", f"{self.matcher!r} is not like 200, 200,302 or 200-399") \
                from None
        return False


@dataclass(frozen=True)
class TargetCheck(Record):
    """One NLB node's health check of one target: sent to (vip, vport), a health
    service the forwarder translates to (node address, port) → target; its result goes
    to the target group `group` ("<node ENI>/<target group>")."""
    group: str
    node_port: Count
    node_ip: Address
    target: tuple[Address, int]
    vip: Address
    vport: int
    check: HealthCheck = HealthCheck()
    host_header: str = ""
    proxy_protocol_v2: bool = False  # the checker sends a PROXY v2 LOCAL header first


# ---- the whole spec ----------------------------------------------------------------------

@dataclass(frozen=True)
class IoSettings(Record):
    """The forwarder's ring geometry, busy polling and the loop thread's real-time
    priority (forwarder/io.py checks their ranges); None: the forwarder's default."""
    ring_slots: Count | None = None
    slot_size: Count | None = None
    busy_poll_us: Count | None = None
    rt_priority: Count | None = None

    def given(self) -> dict[str, int]:
        """The settings that are set, as the forwarder's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in self._fields()
                if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ForwarderSpec(Record):
    """Everything the forwarder runs: its flow table's size, I/O settings, ports,
    services (by unique name) and health checks."""
    flow_capacity: Count = 65536
    io: IoSettings = IoSettings()
    ports: tuple[ForwarderPort, ...] = ()
    services: tuple[Service, ...] = ()
    health_checks: tuple[TargetCheck, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError("services", f"duplicate service names: {', '.join(dupes)}")
        ids = [p.id for p in self.ports]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise SpecError("ports", f"duplicate port ids: {', '.join(map(str, dupes))}")
