"""A slow-booting HTTP service with in-memory state (runs inside the container).

At start it builds an inverted index over generated documents and loads a catalogue, which
takes a few seconds, as loading a model or warming a cache would; only then does it listen.
Endpoints (JSON):

- ``GET /health``: ``{"status": "ok"}``
- ``GET /search?q=WORD``: ids of the documents containing WORD
- ``GET /items`` and ``GET /items/KEY``: the catalogue, or one item
- ``PUT /items/KEY`` (body: the JSON value) and ``DELETE /items/KEY``: change it
- ``GET /stats``: sizes of the catalogue and index, and the changes since boot

The conftest passes this file's text to ``python3 -c``, so nothing is mounted into the
container (bind mounts are not reset by restores).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

PORT = 8000
DOCUMENTS = 60_000
ITEMS = 1_000
#: Never boot faster than this (seconds); the index build is slow on its own on most machines.
MINIMUM_BOOT = 3.0

WORDS = [f"w{number:03d}" for number in range(500)]


def build_index() -> dict[str, list[int]]:
    """Map every word to the ids of the generated documents that contain it."""
    index: dict[str, list[int]] = {}
    for document in range(DOCUMENTS):
        digest = hashlib.sha256(str(document).encode()).digest()
        for offset in range(0, 16, 2):
            word = WORDS[int.from_bytes(digest[offset : offset + 2], "big") % len(WORDS)]
            postings = index.setdefault(word, [])
            if not postings or postings[-1] != document:
                postings.append(document)
    return index


class State:
    """Everything the service keeps in memory."""

    def __init__(self) -> None:
        began = time.monotonic()
        self.index = build_index()
        self.items: dict[str, Any] = {
            f"item-{number}": {"price": number, "stock": 10} for number in range(ITEMS)
        }
        self.changes = 0
        time.sleep(max(0.0, MINIMUM_BOOT - (time.monotonic() - began)))
        self.boot_seconds = time.monotonic() - began


STATE: State


class Handler(BaseHTTPRequestHandler):
    """The HTTP endpoints."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [part for part in url.path.split("/") if part]
        if parts == ["health"]:
            self.reply(200, {"status": "ok"})
        elif parts == ["stats"]:
            self.reply(
                200,
                {
                    "items": len(STATE.items),
                    "words": len(STATE.index),
                    "changes": STATE.changes,
                    "boot_seconds": round(STATE.boot_seconds, 2),
                },
            )
        elif parts == ["search"]:
            word = urllib.parse.parse_qs(url.query).get("q", [""])[0]
            self.reply(200, {"q": word, "documents": STATE.index.get(word, [])})
        elif parts == ["items"]:
            self.reply(200, STATE.items)
        elif len(parts) == 2 and parts[0] == "items" and parts[1] in STATE.items:
            self.reply(200, STATE.items[parts[1]])
        else:
            self.reply(404, {"error": f"no such resource: {url.path}"})

    def do_PUT(self) -> None:
        parts = [part for part in self.path.split("/") if part]
        if len(parts) != 2 or parts[0] != "items":
            self.reply(404, {"error": f"cannot PUT {self.path}"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        STATE.items[parts[1]] = json.loads(self.rfile.read(length) or b"null")
        STATE.changes += 1
        self.reply(200, STATE.items[parts[1]])

    def do_DELETE(self) -> None:
        parts = [part for part in self.path.split("/") if part]
        if len(parts) != 2 or parts[0] != "items" or parts[1] not in STATE.items:
            self.reply(404, {"error": f"cannot DELETE {self.path}"})
            return
        del STATE.items[parts[1]]
        STATE.changes += 1
        self.reply(200, {"deleted": parts[1]})

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the container log quiet: only the boot lines go there."""


def main() -> None:
    global STATE  # noqa: PLW0603 - one process, one state
    print("building the index ...", flush=True)
    STATE = State()
    print(f"index built in {STATE.boot_seconds:.2f}s; listening on {PORT}", flush=True)
    HTTPServer(("0.0.0.0", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
