"""Security groups compiled to nftables text (no root: the ruleset is only rendered)."""
import pathlib

from dataplane import lab as labmod
from dataplane.model import load
from netns_setup import dns, nft

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def rendered():
    lab = load(EXAMPLES / "demo.yaml")
    (p,) = labmod.plan(lab)
    return p, nft.render("demo-sg", p.groups, p.enis)


def chain(script, name):
    body = script.split(f"  chain {name} {{\n", 1)[1].split("\n  }", 1)[0]
    return [line.strip() for line in body.splitlines()]


def test_ingress_rules_become_an_accept_list_ending_in_drop():
    _, script = rendered()
    assert chain(script, "ingress_eni_web1") == [
        "ip saddr 10.0.0.0/16 tcp dport 8080 accept",
        "ip saddr @sg_admin_sg tcp dport 9000-9100 accept",
        'log prefix "vpclab-sg ingress eni-web1" group 27 drop']


def test_egress_defaults_to_all_and_empty_egress_allows_nothing_but_listed():
    _, script = rendered()
    assert chain(script, "egress_eni_web1") == [
        "meta nfproto ipv4 return", 'log prefix "vpclab-sg egress eni-web1" group 27 drop']
    assert chain(script, "egress_eni_admin") == [
        "ip daddr 10.0.1.0/24 tcp dport 8080 return",
        'log prefix "vpclab-sg egress eni-admin" group 27 drop']


def test_default_group_admits_its_members_only():
    _, script = rendered()
    assert chain(script, "ingress_eni_plain") == [
        "ip saddr @sg_default accept", 'log prefix "vpclab-sg ingress eni-plain" group 27 drop']
    assert "set sg_default {\n    type ipv4_addr\n    elements = { 10.0.2.4 }" in script


def test_forward_hook_is_stateful_and_dispatches_by_eni():
    p, script = rendered()
    fwd = chain(script, "forward")
    assert fwd[1:3] == ["ct state established,related accept", "ct state invalid drop"]
    assert '"eni-web1" : jump egress_eni_web1' in fwd[3]
    assert '"eni-plain" : jump ingress_eni_plain' in fwd[4]
    assert fwd[-1] == "accept"
    # The script replaces the table atomically, so applying it twice is a no-op.
    assert script.startswith("table inet demo-sg\ndelete table inet demo-sg\n")


def test_aws_conntrack_timeouts():
    assert nft.CONNTRACK_SYSCTLS["net.netfilter.nf_conntrack_tcp_timeout_established"] == 432000
    assert nft.CONNTRACK_SYSCTLS["net.netfilter.nf_conntrack_udp_timeout"] == 30
    assert nft.CONNTRACK_SYSCTLS["net.netfilter.nf_conntrack_udp_timeout_stream"] == 180


def test_dns_files():
    assert dns.hosts_file("us-east-1", [("web1", "10.0.1.4")]) == (
        "10.0.1.4 web1 ip-10-0-1-4.us-east-1.compute.internal ip-10-0-1-4\n")
    assert "nameserver 10.0.0.2\nsearch eu-west-1.compute.internal\n" in dns.resolv_conf(
        "10.0.0.2", "eu-west-1")
