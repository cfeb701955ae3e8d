"""A TestClient that talks to the studio as its own page does: local Host, session token."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def page_client(app: Any) -> TestClient:
    """``app``'s client with Host 127.0.0.1 and the token the page would send on every POST."""
    return TestClient(app, base_url="http://127.0.0.1", headers={"X-Studio-Token": app.state.token})
