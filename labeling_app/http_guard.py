"""What every HTTP request to the rating app passes through before Gradio sees it.

It remembers the client's address (for login limits), refuses uploads (the app has no upload
component, so an upload can only fill the disk), binds every page's session hash to the user who
opened it (PageOwners: nobody else may send it, in a path, a query or a JSON body), serves on
Gradio's file routes only the run's images and, to admins, the files of the server's private
folder (exports), whatever the route's spelling, and adds headers that forbid framing the app
(clickjacking) and keep an injected script from sending data to another origin. A script-src
policy is not set: Gradio's page runs inline scripts, so escaping (rating_desk.py) is the defence there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from labeling_app.page_owners import PageOwners

# Gradio's file routes, `file=PATH` and its deprecated alias `file/PATH`, decided on the path they would serve.
FILE_ROUTE = re.compile(r"^/+gradio_api/+file[=/]")
# Routes that name a page's session hash in their path.
PAGE_IN_PATH = re.compile(r"^/+gradio_api/+(?:heartbeat|stream)/+([^/]+)")
MAX_JSON_BODY = 1 << 20  # the app's events carry a sample id and a few reason tags

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

    def __init__(self, app, private: Path, is_admin: Callable[[str | None], bool], images: frozenset[Path],
                 pages: PageOwners):
        self.app, self.private, self.is_admin = app, private.resolve(), is_admin
        self.images, self.pages = images, pages

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

        path, user = scope["path"], _user(scope)
        if _is_json_post(scope):
            body = await _read_body(receive)
            receive = _replay(body, receive)
        else:
            body = None
        status, refusal = 403, None
        if scope["method"] == "POST" and path.rstrip("/").endswith("/upload"):
            refusal = "this app accepts no uploads"
        elif body is not None and len(body) > MAX_JSON_BODY:
            status, refusal = 413, "request too large"
        elif FILE_ROUTE.match(path):
            refusal = self._file_refusal(FILE_ROUTE.sub("", path, count=1), user)
        if refusal is None:
            page = _page(scope, path, body)
            if page is not None and user is None:
                status, refusal = 401, "log in first"
            elif page is not None and not self.pages.claim(page, user):
                refusal = "this page belongs to another user; reload to open your own"
        if refusal:
            await JSONResponse({"detail": refusal}, status_code=status)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _file_refusal(self, file: str, user: str | None) -> str | None:
        """None when the file may be served to `user`: one of the run's images, or, to an admin, a file of
        the private folder. Decided on the resolved path, so links and `..` lead nowhere else."""
        try:
            resolved = Path(file).resolve()
        except (ValueError, OSError):  # e.g. a NUL byte
            return "no such file"
        if resolved in self.images:
            return None
        if resolved.is_relative_to(self.private):
            return None if self.is_admin(user) else "only admins can download exports"
        return "this file is not served"


def _is_json_post(scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    return scope["method"] == "POST" and content_type.split(b";")[0].strip() == b"application/json"


async def _read_body(receive) -> bytes:
    """The whole body, or its first MAX_JSON_BODY + 1 bytes when it is longer (then refused)."""
    chunks, size, more = [], 0, True
    while more and size <= MAX_JSON_BODY:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, then whatever the client sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


def _page(scope, path: str, body: bytes | None) -> str | None:
    """The session hash a request names, in its path, its query or its JSON body; None when it names none."""
    if match := PAGE_IN_PATH.match(path):
        return match.group(1)
    query = HTTPConnection(scope).query_params.get("session_hash")
    if query:
        return query
    if body:
        try:
            page = json.loads(body).get("session_hash")
        except (ValueError, AttributeError):  # not a JSON object: Gradio refuses it
            return None
        return page if isinstance(page, str) and page else None
    return None


def _user(scope) -> str | None:
    """The logged-in user of a request, read the way Gradio reads it: its cookie's token in the app's table."""
    app = scope["app"]
    cookies = HTTPConnection(scope).cookies
    token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
    return app.tokens.get(token) if token else None
