"""The text tables of `vpclab flows` and `vpclab stats`, from the data the forwarder
reports (the same shapes forwarderd sends)."""
from __future__ import annotations

from dataplane.forwarder.show import format_flows, format_stats, human


def flow(**kw) -> dict:
    base = {"in_port_name": "eni-0a1b", "protocol": "tcp", "client": ["10.0.1.10", 43512],
            "vip": ["10.0.1.50", 80], "snat": ["10.0.1.100", 17823], "backend": ["10.0.1.20", 8080],
            "tcp_state": "ESTABLISHED", "idle_s": 3, "packets": [12, 10], "bytes": [1300, 9100]}
    return {**base, **kw}


def test_flow_table_spells_out_the_translation() -> None:
    text = format_flows([flow(), flow(client=["10.0.1.11", 1000], protocol="udp", tcp_state="-")])
    header, first, second, total = text.splitlines()
    assert header.split()[:4] == ["ENI", "PROTO", "CLIENT", "ENDPOINT"]
    assert "10.0.1.10:43512" in first and "⇒ 10.0.1.100:17823" in first and "12/10" in first
    assert "1.3K/8.9K" in first and "udp" in second
    assert total == "2 flow(s)"
    assert format_flows([]) == "no flows"


def test_stats_name_every_drop_reason() -> None:
    counters = {k: 0 for k in ["rx_packets", "tx_packets", "dropped", "flows_created",
                               "flows_expired", "arp_replies", "tcp_rst_sent", "mss_clamped",
                               "csum_completed"]}
    stats = {"flows": 2, "capacity": 100, "memory_bytes": 5 << 20,
             "ports": {"eni-0a1b": {"counters": {**counters, "dropped": 7}, "io": {"tx_ring_full": 0},
                                    "drops": {"sg_ingress": 5, "no_service": 2}}}}
    text = format_stats(stats)
    assert text.splitlines()[0] == "flows 2 of 100, engine memory 5.0MB"
    assert "refused by the ingress port's security group rules" in text
    assert "no_service" in text


def test_human() -> None:
    assert [human(n) for n in (0, 1023, 1024, 5 << 20, 3 << 30)] == ["0", "1023", "1.0K", "5.0M", "3.0G"]


def test_stats_can_list_every_reason() -> None:
    counters = {k: 0 for k in ["rx_packets", "tx_packets", "dropped", "flows_created",
                               "flows_expired", "arp_replies", "tcp_rst_sent", "mss_clamped",
                               "csum_completed"]}
    stats = {"flows": 0, "capacity": 1, "memory_bytes": 0,
             "ports": {"eni-0a1b": {"counters": counters, "io": {}, "drops": {}}}}
    assert "REASON" not in format_stats(stats)
    every = format_stats(stats, every_reason=True)
    from dataplane.forwarder.engine import DROP_REASONS
    assert all(f" {r} " in every for r in DROP_REASONS[1:])
