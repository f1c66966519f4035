"""A local HTTP server that refuses every request with 401 and echoes the request's
``Authorization`` header back in the error (``X-Error-Message`` header and JSON body), as a
careless proxy or Hub error page might: with it, a token really reaches an error message,
so "the token is never printed" can be checked for real. A ``HEAD`` request (how
``huggingface_hub`` asks for a file's metadata) is first redirected to a URL carrying the
token as a query parameter, as a signed download URL would: then the token is in the URL
that the client's error names on its first line. It counts the requests it serves."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        self.server.seen.append((self.command, self.path, auth))
        if self.command == "HEAD" and "?echo=" not in self.path:
            self.send_response(307)
            self.send_header("Location", f"{self.path}?echo={auth.removeprefix('Bearer ')}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        message = f"Invalid credentials in Authorization header: {auth!r} for {self.path}"
        body = json.dumps({"error": message}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Message", message)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _answer


class EchoServer:
    """``EchoServer().start()``; ``url``; ``seen`` lists (method, path, Authorization)."""

    def __init__(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.seen = []
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def seen(self) -> list:
        return self._httpd.seen

    def start(self) -> "EchoServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
