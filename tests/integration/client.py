"""One bounded TCP request from inside an instance: prints the server's tag, or why not.

    python3 client.py HOST PORT [TIMEOUT]   →  `<tag>` | `timeout` | `refused` | `error: …`
    python3 client.py HOST uPORT [TIMEOUT]  →  one UDP datagram, the reply's tag

A security group drop is silent, so a refused flow shows as `timeout`, never `refused`.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2].lstrip("u"))
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
try:
    if sys.argv[2].startswith("u"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(b"hello", (host, int(sys.argv[2][1:])))
            print(s.recv(4096).decode().strip())
        sys.exit(0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    print(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(f"error: {e.strerror or e}")
