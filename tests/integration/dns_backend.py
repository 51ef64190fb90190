"""A stand-in gateway for the DNS tests: ``python dns_backend.py HOST PORT NAME``.

Answers ``GET /v2/health/ready`` with 200 and any other request with 200 and a body naming itself, on
keep-alive HTTP/1.1 connections, until killed. Stdlib only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import http.server
import sys
from typing import Any


def main() -> None:
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    served = name.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            body = b'{"ready": true}' if self.path == "/v2/health/ready" else served
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer  # noqa: N815 (http.server's naming)
        do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"{name} listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
