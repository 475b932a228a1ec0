"""Segmentation offload on the veths that carry traffic into the Hyperplane forwarder.

A kernel sending over a veth hands the peer TCP segments of up to 64 KB (TSO/GSO: the
"hardware" is expected to cut them). The forwarder reads frames from AF_PACKET rings
slot by slot and translates them one by one, as AWS Hyperplane sees MTU-sized packets,
so the device that *transmits into* a forwarder port must cut segments itself. This
module turns the segmentation offloads off on such a device; checksum offload stays on
(the engine completes CHECKSUM_PARTIAL checksums, which costs less than the kernel doing
it). Carrying GSO through the forwarder (virtio-net headers on AF_PACKET) is a later
optimisation, measured in bench/.

Devices are reached through the ethtool ioctl, which acts in the caller's namespace, so
the change runs in the device's namespace through nsenter.in_netns_thread.
"""
from __future__ import annotations

from pyroute2.ethtool import Ethtool

from netns_setup.nsenter import in_netns_thread

SEGMENTATION_FEATURES = (
    "tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation", "tx-generic-segmentation", "tx-udp-segmentation",
    "tx-gso-partial", "tx-gso-list",
)


def disable_segmentation_offload(ifname: str, netns: str | None = None) -> list[str]:
    """Turns off every segmentation offload `ifname` has, and waits until the kernel
    shows them off. Returns the features that were on."""

    def change() -> list[str]:
        eth = Ethtool()
        try:
            current = eth.get_features(ifname)
            was_on = [name for name in SEGMENTATION_FEATURES
                      if name in current.features and current.features[name].enable]
            for name in was_on:
                current.features[name].enable = False
            if was_on:
                eth.set_features(ifname, current)
            still_on = [name for name in was_on if eth.get_features(ifname).features[name].enable]
            if still_on:
                raise OSError(f"{ifname}: the kernel kept {', '.join(still_on)} on")
            return was_on
        finally:
            eth.close()

    return in_netns_thread(netns, change)
