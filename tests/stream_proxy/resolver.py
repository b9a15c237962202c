"""A local failover resolver (m3u-proxy's ``failover_resolver_url``): records every JSON body
POSTed to it and answers a scripted JSON object."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Resolver:
    """An IPTV manager's failover endpoint: records every JSON body POSTed to it and answers
    ``answer`` (a dict sent as JSON, with ``status``)."""

    def __init__(self, answer: dict | None = None, status: int = 200):
        self.answer, self.status = answer or {}, status
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.calls.append({"path": self.path, "body": json.loads(raw),
                                        "content_type": self.headers.get("Content-Type")})
                    data, status = json.dumps(owner.answer).encode(), owner.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/failover"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [c["body"] for c in self.calls]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
