"""Segmentation offload on the veths that carry traffic into the Hyperplane forwarder.

A kernel sending over a veth hands the peer GSO frames: up to 64 KB of TCP segments in
one frame, which the "hardware" is expected to cut. The forwarder carries them through
whole, as a hypervisor's virtio-net device does (virtio-net headers on its AF_PACKET
rings, native/hp_io.h), so the kernel cuts them only where they are delivered. A GSO
frame must fit one ring slot, though: `cap_gso_size` lowers the largest GSO frame a
device may send (its gso_max_size) to what a slot takes, on every device that transmits
into a forwarder port and on the devices whose traffic is forwarded there. A frame that
is still larger is dropped by the forwarder and counted (rx_truncated).

`disable_segmentation_offload` turns segmentation off altogether (the kernel then cuts
every frame before it leaves the device); the benchmarks use it for like-for-like runs.

The ethtool ioctl acts in the caller's namespace, so feature changes run in the device's
namespace through nsenter.in_netns_thread; gso_max_size is set over rtnetlink.
"""
from __future__ import annotations

from pyroute2.ethtool import Ethtool

from netns_setup import kernel
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


def cap_gso_size(ifname: str, netns: str, max_frame: int) -> int:
    """Lowers `ifname`'s gso_max_size to `max_frame` bytes (it is never raised) and
    returns the size in force. TCP keeps a GSO frame, headers included, below the
    device's gso_max_size, so no frame it sends through `ifname` is larger than
    `max_frame`."""
    if not netns:
        raise ValueError(f"{ifname}: the GSO cap is set in a lab's namespace, never in the root one")
    if max_frame < 1500:
        raise ValueError(f"{ifname}: a GSO cap of {max_frame} bytes is below a 1500-byte frame")
    with kernel.ipr(netns) as ipr:
        try:
            link = kernel.get_link(ipr, netns, ifname)
        except kernel.KernelError as e:
            raise OSError(f"{ifname}: no such interface in namespace {netns}") from e
        current = link.get_attr("IFLA_GSO_MAX_SIZE")
        if current is None or current > max_frame:
            ipr.link("set", index=link["index"], gso_max_size=max_frame)
            current = kernel.get_link(ipr, netns, ifname).get_attr("IFLA_GSO_MAX_SIZE")
            if current is None or current > max_frame:
                raise OSError(f"{ifname}: the kernel kept gso_max_size at {current}")
        return current
