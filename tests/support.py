"""Small helpers shared by the tests that talk to real processes (importable as ``support``).

Fixtures live in the ``conftest.py`` files; plain functions a test calls live here, so each
test module does not carry its own copy.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.5) -> bool:
    """Poll ``predicate`` every ``step`` seconds until it is truthy or ``timeout`` has passed.

    For waiting on real processes and real time; a test of our own code uses a FakeClock.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def http_status(url: str) -> int:
    """GET ``url`` and return its status code (an error status is an answer, not a raise)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def http_json(url: str, body: object | None = None) -> tuple[int, dict[str, Any]]:
    """GET, or POST ``body`` (raw when bytes, else as JSON); return the status and JSON answer."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
