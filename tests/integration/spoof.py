"""Spoofed IPv4 packets for the source/destination check tests, with raw sockets.

    python3 spoof.py send SRC DST PROTO DPORT COUNT [SRC DST PROTO DPORT COUNT ...]
                                                        PROTO: udp or syn (a TCP SYN)
    python3 spoof.py listen PROTO DPORT SECONDS         prints "SRC DST" per packet seen

`send` writes whole IPv4 headers (IP_HDRINCL), so the source is whatever it is told.
`listen` reads every IPv4 frame of eth0 (AF_PACKET), before the namespace's own IP
stack decides anything, so it also sees a packet for an address the instance does not
have. Run inside an instance's namespace (`vpclab exec`); root only.
"""
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
SPORT = 40000


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def packet(src: str, dst: str, proto: str, dport: int, ident: int) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    if proto == "udp":
        payload = b"spoofed"
        l4 = struct.pack("!HHHH", SPORT + ident, dport, 8 + len(payload), 0) + payload
        number = socket.IPPROTO_UDP
    else:
        l4 = struct.pack("!HHIIBBHHH", SPORT + ident, dport, 1000 + ident, 0, 5 << 4, 0x02,
                         64240, 0, 0)
        number = socket.IPPROTO_TCP
    pseudo = s + d + struct.pack("!BBH", 0, number, len(l4))
    csum = checksum(pseudo + l4)
    at = 6 if proto == "udp" else 16
    l4 = l4[:at] + struct.pack("!H", csum) + l4[at + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, number, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + l4


def send(src: str, dst: str, proto: str, dport: int, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(count):
        sock.sendto(packet(src, dst, proto, dport, i), (dst, 0))
        time.sleep(0.01)


def listen(proto: str, dport: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind(("eth0", ETH_P_IP))
    sock.settimeout(0.2)
    number = socket.IPPROTO_UDP if proto == "udp" else socket.IPPROTO_TCP
    print("listening", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = sock.recv(65535)
        except socket.timeout:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != number or struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] != dport:
            continue
        print(socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        for at in range(2, len(sys.argv), 5):
            src, dst, proto, dport, count = sys.argv[at:at + 5]
            send(src, dst, proto, int(dport), int(count))
    else:
        listen(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
