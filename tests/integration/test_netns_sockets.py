"""nsenter.NetnsSockets: a socket made in another namespace lives there, and the thread
that made it stays where it was (how a program picks a VPC link's routing domain)."""
from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from netns_setup import kernel, nsenter

pytestmark = pytest.mark.root
NS = "t3nss.link"
ONLY_THERE = "169.254.77.2"       # an address that exists in NS and nowhere else


@pytest.fixture
def link_namespace():
    try:
        kernel.ensure_netns(NS, "vpclab.t3nss.lo")
        kernel.ensure_address(NS, "lo", ONLY_THERE, 32)
        yield NS
    finally:
        kernel.remove_netns(NS)
    assert not kernel.netns_exists(NS)


def own_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_socket_belongs_to_the_named_namespace(link_namespace):
    home = own_netns()
    with socket.socket() as plain, pytest.raises(OSError) as refused:
        plain.bind((ONLY_THERE, 0))
    assert refused.value.errno == errno.EADDRNOTAVAIL
    with nsenter.NetnsSockets(link_namespace) as there:
        with there.socket() as s:
            s.bind((ONLY_THERE, 0))               # only possible inside NS
            assert s.getsockname()[0] == ONLY_THERE
        with there.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((ONLY_THERE, 0))
    assert own_netns() == home                    # the calling thread never moved


def test_each_thread_returns_to_its_own_namespace(link_namespace):
    """A thread that lives in another namespace goes back there, not to the main one's."""
    kernel.ensure_netns("t3nss.other", "vpclab.t3nss.lo")
    try:
        seen: list[tuple[int, int]] = []

        def in_other() -> None:
            nsenter.setns("t3nss.other")
            before = own_netns()
            with nsenter.NetnsSockets(link_namespace) as there, there.socket() as s:
                s.bind((ONLY_THERE, 0))
            seen.append((before, own_netns()))

        t = threading.Thread(target=in_other)
        t.start()
        t.join()
        (before, after), = seen
        assert before == after != own_netns()
    finally:
        kernel.remove_netns("t3nss.other")


def test_missing_namespace_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="t3nss.absent"):
        nsenter.NetnsSockets("t3nss.absent")
