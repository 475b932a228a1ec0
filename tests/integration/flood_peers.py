"""The legitimate side of the SYN-flood tests: an echo server, one long stream, and a
series of new connections, each bounded in time and reporting one JSON line.

    python3 flood_peers.py serve PORT
        echoes every connection until its client closes (a thread each)
    python3 flood_peers.py stream HOST PORT SECONDS STOPFILE
        one connection that sends a numbered 512-byte block every 20 ms and reads its
        echo back, for SECONDS or until STOPFILE exists; prints "connected" once open,
        "progress MONOTONIC BLOCKS" every second (CLOCK_MONOTONIC is the host's, the
        same in every namespace), and at the end {"blocks": n, "error": null | "what
        broke"}; a RST or a 10 s stall is an error
    python3 flood_peers.py connect HOST PORT COUNT INTERVAL TIMEOUT
        opens COUNT connections, one every INTERVAL seconds (each in its own thread, so
        a slow one does not delay the next), each sending one line and reading its echo
        within TIMEOUT; prints {"ok": n, "failed": n, "errors": {why: n}}

Run inside instances with `vpclab exec`; `serve` as a target's `run:` command.
"""
import json
import os
import socket
import sys
import threading
import time

BLOCK = 512


def serve(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1024)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn: socket.socket) -> None:
    try:
        while data := conn.recv(65536):
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the far side")
        data += chunk
    return data


def stream(host: str, port: int, seconds: float, stopfile: str) -> None:
    sock = socket.create_connection((host, port), timeout=10)
    print("connected", flush=True)
    blocks, error = 0, None
    deadline = time.monotonic() + seconds
    next_report = 0.0
    try:
        while time.monotonic() < deadline and not os.path.exists(stopfile):
            if time.monotonic() >= next_report:
                print(f"progress {time.monotonic():.3f} {blocks}", flush=True)
                next_report = time.monotonic() + 1
            block = blocks.to_bytes(8, "big") * (BLOCK // 8)
            sock.sendall(block)
            if recv_exactly(sock, BLOCK) != block:
                raise ValueError(f"block {blocks} came back changed")
            blocks += 1
            time.sleep(0.02)
    except (OSError, ValueError) as e:
        error = f"{type(e).__name__}: {e}"
    finally:
        sock.close()
    print(json.dumps({"blocks": blocks, "error": error}), flush=True)


def connect(host: str, port: int, count: int, interval: float, timeout: float) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        line = f"hello {i}\n".encode()
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.sendall(line)
                outcome = "ok" if recv_exactly(sock, len(line)) == line else "changed"
        except socket.timeout:
            outcome = "timeout"
        except OSError as e:
            outcome = type(e).__name__
        with lock:
            results.append(outcome)

    threads = []
    for i in range(count):
        threads.append(threading.Thread(target=attempt, args=(i,)))
        threads[-1].start()
        time.sleep(interval)
    for t in threads:
        t.join()
    errors: dict[str, int] = {}
    for r in results:
        if r != "ok":
            errors[r] = errors.get(r, 0) + 1
    print(json.dumps({"ok": results.count("ok"), "failed": len(results) - results.count("ok"),
                      "errors": errors}), flush=True)


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "serve":
        serve(int(args[0]))
    elif verb == "stream":
        stream(args[0], int(args[1]), float(args[2]), args[3])
    elif verb == "connect":
        connect(args[0], int(args[1]), int(args[2]), float(args[3]), float(args[4]))
    else:
        sys.exit(f"flood_peers.py: unknown verb {verb!r} (serve, stream or connect)")
