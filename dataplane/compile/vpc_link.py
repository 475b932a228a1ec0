"""HTTP-API VPC links compiled: each link's attachment port and one VPC-to-VPC NAT
service in the forwarder spec (the kind's compile floor; dataplane/kinds.py registers it).

What `up` makes for a lab with VPC links (lab/realise_vpc_link.py makes it, names in
model/names.py):

| what | where |
|---|---|
| API Gateway's VPC (the service's own account), for its front end (issue 10 on) | namespace `<lab>.apigw`, nothing in it yet but `lo` |
| each link's routing domain: its attachment to the Hyperplane | namespace `<lab>.apigw.<link>`, `vpclink0` 169.254.0.2/30 ⇄ `hp<port>` in `<lab>.hyperplane` (the forwarder answers for 169.254.0.1) |
| the route over the link | `<link VPC CIDR> via 169.254.0.1 dev vpclink0` in the link's namespace, nothing else |
| each link ENI: a Hyperplane ENI in the customer subnet | `eni-<11 hex>` in the VPC namespace ⇄ `hp<port>` (lab/hyperplane.py, as for PrivateLink) |

Customer CIDRs may overlap each other and API Gateway's own (10.0.0.0/16 here, like the
most common customer VPC), so a program picks a link by its routing domain, never by
address: it runs in the link's namespace (`vpclab exec apigw --link L -- …`) or opens its
sockets there (`netns_setup.nsenter.NetnsSockets`). The kernel vpclab runs on has no VRFs
(CONFIG_NET_VRF is off here), and a namespace per link costs a program two setns() calls
per socket (bench/test_link_socket.py). Every link's attachment has the same link-local
addresses: they never leave the link's namespace and the forwarder's port.

How a link compiles (`contribute`), one `vpc_nat` service per link (native/hp_kind_vpc_nat.c):

    (src, sport, dst, dport) on the attachment port ⇒ (link ENI, snat port, dst, dport) out of that ENI
    (dst, dport, link ENI, snat port) on the ENI port ⇒ (dst, dport, src, sport) out of the attachment

* The destination is kept; the link reaches its VPC's CIDR.
* ENI choice (vpclab's choice; AWS does not say): the link's ENI in the destination
  subnet's AZ, one route per subnet of the VPC whose AZ has a link ENI; a destination in
  an AZ without one gets an ENI by hash.
* The link ENIs' security groups: their egress rules decide which new flows leave (a
  group without egress rules allows all out, as a new AWS group); targets' ingress rules
  see the ENI's address, and `sg:<link group>` includes the link ENIs (Lab.sg_members).
* TCP and UDP, one way: the customer side cannot open a flow toward a link ENI
  (`link_one_way`). Idle timeout 350 s (Hyperplane's; AWS publishes none for this
  construct), MTU 8500 and MSS 8460 as PrivateLink until a fact says otherwise.
"""
from __future__ import annotations

from dataplane.model.topology import Lab
from dataplane.model.vpc_link import ENI_KIND, vpc_link_id

from .hyperplane import Ports, SpecContext, SpecDraft, attachment_key, sg_rules
from .spec import ForwarderPort, LinkEni, LinkRoute, SecurityGroups, VpcNatService
from .privatelink import ENDPOINT_MSS, ENDPOINT_MTU

API_GATEWAY_CIDR = "10.0.0.0/16"          # API Gateway's own VPC (vpclab's choice)
ATTACHMENT_IFNAME = "vpclink0"            # in the link's namespace
ATTACHMENT_IP, GATEWAY_IP, ATTACHMENT_PREFIXLEN = "169.254.0.2", "169.254.0.1", 30
IDLE_TIMEOUT_S = 350


def attachment_ports(lab: Lab, ports: Ports) -> dict[str, int]:
    """{link name: its attachment's forwarder port}, in the file's order (a new lab
    numbers them after the ENIs' ports and the health port)."""
    return {name: ports.ids[attachment_key(name)] for name in lab.vpc_links}


def service(ctx: SpecContext, name: str, in_port: int) -> VpcNatService:
    """The link's `vpc_nat` entry of the forwarder spec (forwarder/spec.py)."""
    lab, link = ctx.lab, ctx.lab.vpc_links[name]
    vpc = lab.vpcs[link.vpc]
    enis = ctx.by_owner[(vpc.name, ENI_KIND, name)]
    index_by_az = {p.eni.az: i for i, p in enumerate(enis)}
    routes = tuple(LinkRoute(str(s.network), index_by_az[s.az])
                   for s in vpc.subnets.values() if s.az in index_by_az)
    return VpcNatService(name=vpc_link_id(lab.name, name), in_port=in_port,
                         prefixes=(str(vpc.network),),
                         enis=tuple(LinkEni(p.id, p.eni.ip) for p in enis),
                         routes=routes, protocols=("tcp", "udp"),
                         idle_timeout_s=IDLE_TIMEOUT_S, mtu=ENDPOINT_MTU, mss_clamp=ENDPOINT_MSS)


def contribute(ctx: SpecContext, spec: SpecDraft) -> None:
    """Each link: its attachment port, its ENIs' egress rules, its vpc_nat service."""
    lab = ctx.lab
    for name, port_id in attachment_ports(lab, ctx.ports).items():
        link = lab.vpc_links[name]
        vpc = lab.vpcs[link.vpc]
        spec.ports.append(ForwarderPort(id=port_id, name=f"{vpc_link_id(lab.name, name)}/attachment",
                                        ifname=f"hp{port_id}", mac=ctx.macs[port_id][0],
                                        peer_mac=ctx.macs[port_id][1], addrs=(GATEWAY_IP,)))
        egress = sg_rules(vpc, link.effective_security_groups, lab.sg_members(vpc), "egress")
        for p in ctx.by_owner[(vpc.name, ENI_KIND, name)]:
            spec.filter_port(p.id, SecurityGroups(egress=egress))
        spec.services.append(service(ctx, name, port_id))


def dns_records(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """Links have no names in the customer VPCs' resolvers."""
    return {}
