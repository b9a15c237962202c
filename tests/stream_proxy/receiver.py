"""A local webhook receiver: records every POST (headers, JSON body, time) and answers with
scripted statuses or delays."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self):
        self.calls: list[dict] = []
        self.script: list = []  # per call: an int status, or ("sleep", seconds, status)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with owner._lock:
                    step = owner.script.pop(0) if owner.script else 200
                    owner.calls.append({"path": self.path, "headers": dict(self.headers),
                                        "body": raw, "at": time.monotonic()})
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = step[2]
                try:
                    self.send_response(step)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        return [json.loads(c["body"]) for c in self.calls]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if predicate(e)]
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no matching webhook event within {timeout}s; got {self.events()}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
