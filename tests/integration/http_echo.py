"""An HTTP/1.1 target for API Gateway tests: answers each request with what it saw.

    python3 http_echo.py TAG PORT [HEALTH]

The body is JSON: {"tag", "peer" (the address the target saw), "method", "path" (with
the query string), "headers" ([name, value] pairs as received), "body_length"}.
Paths that misbehave on purpose, for the error rows of API Gateway:

* `/sleep/S` waits S seconds before answering (integration timeouts);
* `/reset` closes the connection without answering (a backend dying mid-request);
* `/junk` answers bytes that are not HTTP;
* `/healthz` answers status HEALTH (default 200) with the body `TAG` (a load
  balancer's health check).

Keep-alive is honoured (HTTP/1.1). Started by the labs' `run:`, stopped by `vpclab down`.
"""
import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo/1.0"

    def log_message(self, fmt, *args):          # one line a request, to the lab's log
        sys.stdout.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stdout.flush()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/sleep/"):
            time.sleep(float(self.path.split("/")[2]))
        if self.path.startswith("/reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.close_connection = True
            return
        if self.path == "/healthz":
            self.send_response(HEALTH)
            self.send_header("Content-Length", str(len(TAG)))
            self.end_headers()
            self.wfile.write(TAG.encode())
            return
        if self.path.startswith("/junk"):
            self.wfile.write(b"\x00\x01this is not HTTP\r\n\r\n")
            self.close_connection = True
            return
        out = json.dumps({"tag": TAG, "peer": self.client_address[0], "method": self.command,
                          "path": self.path, "headers": list(self.headers.items()),
                          "body_length": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


if __name__ == "__main__":
    TAG = sys.argv[1]
    HEALTH = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    server.serve_forever()
