"""A tiny JSON client of the example service, shared by its conftest.py and its tests.

(Tests import it as ``service_client``: ``from conftest import ...`` would pick up whichever
conftest.py pytest imported last when several directories are run together.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pytest_criu import ContainerHandle


class Client:
    """A tiny JSON client; it asks the handle for the port on every request.

    Each fresh restore publishes the port anew, so a base URL computed once would point at a
    removed container. Looking it up per request is the simplest way to reconnect.
    """

    def __init__(self, handle: ContainerHandle) -> None:
        self.handle = handle

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        host, port = self.handle.address(8000)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body
