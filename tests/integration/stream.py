"""A long TCP conversation for lab tests (the reconcile tests' flow that must survive).

    python3 stream.py server PORT              echo every line back, on every connection
    python3 stream.py client HOST PORT SECONDS one connection; a line every 50 ms for
                                               SECONDS, each echo checked; prints the
                                               running count of echoed lines, one a line

The client exits 0 after SECONDS with every line echoed, 1 at the first error (printed).
"""
import socket
import sys
import threading
import time


def serve(port: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def client(host: str, port: int, seconds: float) -> int:
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            f = s.makefile("rb")
            end, n = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                line = f"line {n}\n".encode()
                s.sendall(line)
                if f.readline() != line:
                    print(f"error: no echo of line {n}", flush=True)
                    return 1
                n += 1
                print(n, flush=True)
                time.sleep(0.05)
    except OSError as e:
        print(f"error: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
