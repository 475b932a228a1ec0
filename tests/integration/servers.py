"""A tiny TCP server for lab tests: answers every connection on each PORT with TAG.

    python3 servers.py TAG PORT [PORT...]      (uPORT: a UDP port)

A port written hPORT holds every connection open and never answers (idle-timeout tests).
`{peer}` in TAG is replaced by the client's address as the server sees it (PrivateLink
tests check that a target sees the NLB's address, never the consumer's).

It speaks just enough HTTP/1.0 for curl (`200 OK`, body `TAG\\n`) and raw clients
(client.py); on a UDP port it answers every datagram with `TAG`. Started by the labs' `run:` and stopped by `vpclab down` (by PID).
"""
import socket
import sys
import threading


def tagged(tag: bytes, peer: tuple) -> bytes:
    return tag.replace(b"{peer}", peer[0].encode())


def listening(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    return s


def serve(port: int, tag: bytes) -> None:
    s = listening(port)
    while True:
        c, peer = s.accept()
        try:
            c.settimeout(2)
            try:
                c.recv(4096)
            except OSError:
                pass
            body = tagged(tag, peer) + b"\n"
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        finally:
            c.close()


def hold(port: int) -> None:
    s = listening(port)
    while True:
        c, _ = s.accept()
        threading.Thread(target=drain, args=(c,), daemon=True).start()


def drain(c: socket.socket) -> None:
    """Reads until the client closes; never answers."""
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()


def serve_udp(port: int, tag: bytes) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        _, peer = s.recvfrom(4096)
        s.sendto(tagged(tag, peer), peer)


if __name__ == "__main__":
    tag = sys.argv[1].encode()
    threads = [threading.Thread(target=serve_udp, args=(int(p[1:]), tag), daemon=True)
               if p.startswith("u") else
               threading.Thread(target=hold, args=(int(p[1:]),), daemon=True)
               if p.startswith("h") else
               threading.Thread(target=serve, args=(int(p), tag), daemon=True)
               for p in sys.argv[2:]]
    for t in threads:
        t.start()
    print(f"serving {sys.argv[1]} on {' '.join(sys.argv[2:])}", flush=True)
    for t in threads:
        t.join()
