"""Entering a named network namespace from Python: in this process, a child, or a fork.

Python 3.11 has no os.setns/os.unshare, so the three system calls are made through
ctypes. `enter()` is what `vpclab exec` calls before exec'ing the user's command and
what `spawn()` runs in the child between fork and exec:

1. setns() into `/run/netns/<name>` (the namespace `ip netns` shows);
2. optionally, a private mount namespace (unshare(CLONE_NEWNS), propagation private,
   so nothing leaks back to the host), in which a fresh sysfs is mounted (so /sys/class/net
   shows the namespace's links, as `ip netns exec` does) and the lab's resolv.conf
   (a file under /run/vpclab/<lab>/) is bind-mounted over /etc/resolv.conf. Nothing is
   ever written in /etc; the bind mount dies with the process.

`in_netns(name, fn)` runs `fn` in a forked child that entered the namespace, for work
that must not share this process (a test's client that changes its own mounts).
`in_netns_thread(name, fn)` runs `fn` in a thread of this process that entered the
namespace (setns moves one thread only): what must outlive the call in this process,
such as the forwarder's AF_PACKET sockets or an ethtool ioctl's effect, is made there,
and so are per-namespace sysctls (/proc/sys/net follows the namespace of the *thread*
that opens the file) and commands such as `nft` (a child starts in the namespace of the
thread that forks it, so Python can use vfork: no copy of its page tables, no helper).

`new_netns(name)` makes a named namespace as `ip netns add` does — /run/netns a shared
mount point, an empty file there, the new namespace bind-mounted on it — but from a
short-lived thread that unshares its own network namespace (CLONE_NEWNET may be
unshared by one thread of many), where pyroute2's `netns.create` forks a helper
process each time (about 25 ms against 1 ms on the 2-core VM).

`NetnsSockets(name).socket(...)` opens a socket that belongs to namespace `name` from
the calling thread, which stays where it was: setns there, socket(), setns back. A
socket keeps the namespace it was made in for its whole life, so this is how one program
uses several routing domains at once — API Gateway's front end opens each backend
connection in the namespace of the VPC link it goes over (the kernel here has no VRFs).
The link's namespace file is opened once per `NetnsSockets` and each thread's own once
per thread, so a socket costs two setns() calls more than a plain one: about 4.5 µs on
the 2-core VM, against 78 µs for a whole loopback TCP connection from Python
(bench/test_link_socket.py). A thread that later moves itself with setns() is taken back
to the namespace it had when it first made such a socket.
"""
from __future__ import annotations

import ctypes
import errno
import os
import pickle
import socket
import threading
import traceback
from typing import Any, Callable

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_void_p]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def setns(name: str) -> None:
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns into network namespace {name}")
    finally:
        os.close(fd)


_thread_home = threading.local()


def _home_netns_fd() -> int:
    """This thread's own network namespace, opened once per thread (threads may differ;
    the descriptor is closed with the thread's other locals when it ends)."""
    home = getattr(_thread_home, "file", None)
    if home is None:
        home = _thread_home.file = open("/proc/thread-self/ns/net", "rb", buffering=0)
    return home.fileno()


class NetnsSockets:
    """Sockets of network namespace `name`, made from any thread of this process."""

    def __init__(self, name: str):
        self.name = name
        self._target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
               proto: int = 0) -> socket.socket:
        home = _home_netns_fd()
        _check(_libc.setns(self._target, CLONE_NEWNET), f"setns into network namespace {self.name}")
        try:
            return socket.socket(family, type, proto)
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back to this thread's namespace")

    def close(self) -> None:
        if self._target >= 0:
            os.close(self._target)
            self._target = -1

    def __enter__(self) -> "NetnsSockets":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"   # Debian's; OpenSSL's default


def private_mounts(resolv_conf: str | None, ca_bundle: str | None = None) -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    # A sysfs of this network namespace; failing that, the host's /sys stays (harmless).
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:
        _libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None)
    if resolv_conf:
        _check(_libc.mount(_b(resolv_conf), b"/etc/resolv.conf", None, MS_BIND, None),
               f"bind-mount {resolv_conf} over /etc/resolv.conf")
    if ca_bundle:
        # The host's trusted CAs plus a lab's own (dataplane/lab/ca.py), for this
        # process and its children only.
        _check(_libc.mount(_b(ca_bundle), _b(SYSTEM_CA_BUNDLE), None, MS_BIND, None),
               f"bind-mount {ca_bundle} over {SYSTEM_CA_BUNDLE}")


def enter(name: str, resolv_conf: str | None = None, private: bool = False,
          ca_bundle: str | None = None) -> None:
    """Move this process into network namespace `name` (see the module docstring)."""
    setns(name)
    if private or resolv_conf or ca_bundle:
        private_mounts(resolv_conf, ca_bundle)


def in_netns(name: str, fn: Callable[[], Any]) -> Any:
    """Run `fn()` in a forked child inside namespace `name`; return its result or raise."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(r)
        try:
            setns(name)
            out = (True, fn())
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            out = (False, f"{e.__class__.__name__}: {e}\n{traceback.format_exc()}")
        try:
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(65536):
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError(f"child in namespace {name} died without an answer")
    ok, value = pickle.loads(b"".join(chunks))
    if not ok:
        raise RuntimeError(f"in namespace {name}: {value.splitlines()[0]}")
    return value


def _share_run_dir() -> None:
    """/run/netns as a shared mount point (a bind mount of itself if it is none), so
    that a namespace mounted there shows in every mount namespace: iproute2's steps."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"make {NETNS_RUN_DIR} a shared mount")
    _check(_libc.mount(NETNS_RUN_DIR.encode(), NETNS_RUN_DIR.encode(), b"none",
                       MS_BIND | MS_REC, None), f"bind-mount {NETNS_RUN_DIR} on itself")
    _check(_libc.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None),
           f"make {NETNS_RUN_DIR} a shared mount")


def new_netns(name: str) -> None:
    """A new, empty network namespace named `name` (see the module docstring); raises
    FileExistsError if the name is taken, and leaves nothing behind on failure."""
    _share_run_dir()
    path = netns_path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))

    def bind_own_namespace() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND,
                           None), f"bind-mount a new network namespace on {path}")
    try:
        in_netns_thread(None, bind_own_namespace)
    except BaseException:
        os.unlink(path)
        raise


def in_netns_thread(name: str | None, fn: Callable[[], Any]) -> Any:
    """Run `fn()` in a short-lived thread inside namespace `name` (None: this one);
    return its result or raise its exception. Sockets it opens stay in that namespace."""
    box: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            if name is not None:
                setns(name)
            box.append((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            box.append((False, e))

    thread = threading.Thread(target=target, name=f"vpclab-in-{name}")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _in_netns_named(name: str, fn: Callable[[], Any]) -> Any:
    """`in_netns_thread`, with an OSError turned into a RuntimeError naming `name`."""
    try:
        return in_netns_thread(name, fn)
    except OSError as e:
        raise RuntimeError(f"in namespace {name}: {e.__class__.__name__}: {e}") from e


def write_sysctls(name: str, values: dict[str, str | int]) -> None:
    """Set sysctls (dotted keys, e.g. net.ipv4.ip_forward) inside namespace `name`."""
    def apply() -> None:
        for key, value in values.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(str(value))
    _in_netns_named(name, apply)


def read_sysctl(name: str, key: str) -> str:
    def read() -> str:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()
    return _in_netns_named(name, read)
