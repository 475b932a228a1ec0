"""A tiny TCP server for lab tests: answers every connection on each PORT with TAG.

    python3 servers.py TAG PORT [PORT...]

It speaks just enough HTTP/1.0 for curl (`200 OK`, body `TAG\\n`) and raw clients
(client.py). Started by the labs' `run:` and stopped by `vpclab down` (by PID).
"""
import socket
import sys
import threading


def serve(port: int, tag: bytes) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(2)
            try:
                c.recv(4096)
            except OSError:
                pass
            body = tag + b"\n"
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        finally:
            c.close()


if __name__ == "__main__":
    tag = sys.argv[1].encode()
    threads = [threading.Thread(target=serve, args=(int(p), tag), daemon=True)
               for p in sys.argv[2:]]
    for t in threads:
        t.start()
    print(f"serving {sys.argv[1]} on {' '.join(sys.argv[2:])}", flush=True)
    for t in threads:
        t.join()
