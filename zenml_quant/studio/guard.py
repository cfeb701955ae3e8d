"""Who may drive the studio: only the page it served, on the address it bound.

The studio runs a user's model on their machine, so any web page they have open is a possible
caller. :class:`Guard` is an ASGI middleware that refuses, before the app sees the request:

- a ``Host`` other than the bound address (DNS rebinding: a foreign name resolving to 127.0.0.1);
- a cross-origin API call (``Origin`` not the studio's own, or ``Sec-Fetch-Site`` other than
  ``same-origin``/``none``; note that another port on localhost is *same-site*, not same-origin);
- a state-changing request (POST) without the per-session token the page was served with, or
  without a JSON content type (a cross-site form or ``text/plain`` beacon can send neither);
- a body over :data:`MAX_BODY_BYTES` (413, and the body is never echoed back).

Written as plain ASGI rather than with Starlette's ``TrustedHostMiddleware``/``CORSMiddleware``:
those cover the Host and CORS headers but not the token, the content type or the body bound,
and one place that decides keeps the rules readable.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_BODY_BYTES", "TOKEN_HEADER", "Guard", "allowed_hosts", "new_token"]

#: The largest request body accepted; the page's plans are a few KB.
MAX_BODY_BYTES = 1_000_000
#: The header that carries the session token on every POST.
TOKEN_HEADER = "x-studio-token"
#: Host names the studio answers to (it binds 127.0.0.1 only).
LOCAL_NAMES = ("127.0.0.1", "localhost")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    """A fresh unguessable session token."""
    return secrets.token_urlsafe(32)


def allowed_hosts(port: int | None) -> frozenset[str]:
    """The ``Host`` values accepted: the local names on ``port`` (any port when None)."""
    if port is None:
        return frozenset(LOCAL_NAMES)
    return frozenset(f"{name}:{port}" for name in LOCAL_NAMES)


class Guard:
    """ASGI middleware applying the module's rules in front of ``app``."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: Iterable[str]) -> None:
        self.app, self.token, self.hosts = app, token, frozenset(hosts)
        # With no port pinned, "127.0.0.1" allows "127.0.0.1:<any>" too (tests, notebooks).
        self.any_port = all(":" not in h for h in self.hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, f"Request body over {MAX_BODY_BYTES:,} bytes: refused.")
            return
        await self.app(scope, _replay(body, receive), send)

    def _host_ok(self, host: str) -> bool:
        if host in self.hosts:
            return True
        name, _, port = host.rpartition(":")
        return self.any_port and port.isdigit() and name in self.hosts

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if not self._host_ok(host):
            return 421, (
                f"This studio answers only at {' or '.join(sorted(self.hosts))}, not Host "
                f"{host[:100]!r}: open the address the studio printed."
            )
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            return 403, "Cross-origin request refused: use the studio's own page."
        # Only the API: following a link to the page itself is a cross-site navigation.
        api = scope["path"].startswith("/api/")
        if api and headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
            return 403, "Cross-site request refused: use the studio's own page."
        if scope["method"] in ("GET", "HEAD"):
            return None
        given = headers.get(TOKEN_HEADER, "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return 403, (
                "Missing or wrong studio token: reload the studio's page (the token changes "
                "every time the studio starts)."
            )
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, "The studio's API takes JSON only (Content-Type: application/json)."
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return 413, f"Request body over {MAX_BODY_BYTES:,} bytes: refused."
        return None


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.netloc == host


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None as soon as it passes the bound (chunked bodies included)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the app the body already read, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # e.g. the disconnect Starlette listens for
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
