"""What every HTTP request to the rating app passes through before Gradio sees it.

It remembers the client's address (for login limits), refuses uploads (the app has no upload
component, so an upload can only fill the disk), serves files of the server's private folder
(admin exports) to admins only, and adds headers that forbid framing the app
(clickjacking) and keep an injected script from sending data to another origin. A script-src
policy is not set: Gradio's page runs inline scripts, so escaping (ui.py) is the defence there.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

CLIENT_ADDRESS: ContextVar[str] = ContextVar("client_address", default="unknown")

SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self';"
    " connect-src 'self'; img-src 'self' data: blob:",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class HttpGuard:
    """Pure ASGI middleware, so the address it records is visible to the login handler in the same task."""

    def __init__(self, app, private: Path, is_admin: Callable[[str | None], bool]):
        self.app, self.private, self.is_admin = app, private.resolve(), is_admin

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        CLIENT_ADDRESS.set(client[0] if client else "unknown")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = None
        if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload"):
            refusal = "this app accepts no uploads"
        elif self._private_file(scope["path"]) and not self.is_admin(_user(scope)):
            refusal = "only admins can download exports"
        if refusal:
            await JSONResponse({"detail": refusal}, status_code=403)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _private_file(self, path: str) -> bool:
        _, marker, file = urllib.parse.unquote(path).partition("/file=")
        try:
            return bool(marker) and Path(file).resolve().is_relative_to(self.private)
        except (ValueError, OSError):  # e.g. a NUL byte: not a file of ours, and Gradio refuses it
            return False


def _user(scope) -> str | None:
    """The logged-in user of a request, read the way Gradio reads it: its cookie's token in the app's table."""
    app = scope["app"]
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
    return app.tokens.get(token) if token else None
