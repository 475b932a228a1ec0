"""A backend for the API Gateway front end's root tests: `python apigw_backend.py ADDRESS PORT`.

HTTP/1.1 with keep-alive (http.server, one thread per connection). Every answer is JSON
saying what the backend saw: method, path (with query), headers as a list of pairs, the
body's length, and the client's address and port (a reused connection keeps its port).
Paths that misbehave on purpose: `/sleep/<ms>/…` answers after that long, `/junk/…`
answers with bytes that are not HTTP, `/close/…` closes without answering, `/chunked/…`
answers with a chunked body, `/big/<n>/…` with an n-byte body.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("/")
        if "sleep" in parts:
            time.sleep(int(parts[parts.index("sleep") + 1]) / 1000)
        if "junk" in parts:
            self.wfile.write(b"this is not HTTP at all\r\n\r\n")
            self.close_connection = True
            return
        if "close" in parts:
            self.close_connection = True
            return
        seen = json.dumps({"method": self.command, "path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()],
                           "body_len": len(body), "peer": list(self.client_address)}).encode()
        if "big" in parts:
            seen = b"x" * int(parts[parts.index("big") + 1])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Server", "apigw-test-backend")
        if "chunked" in parts:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(seen) // 2
            for piece in (seen[:half], seen[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(seen)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(seen)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    server = Server((sys.argv[1], int(sys.argv[2])), Handler)
    print("ready", flush=True)
    server.serve_forever()
