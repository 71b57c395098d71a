"""Each marked test changes the service's in-memory state over HTTP; the next sees it pristine."""

from __future__ import annotations

import pytest
from service_client import Client

from pytest_criu import ContainerHandle

pytestmark = pytest.mark.criu_snapshot

PRISTINE_ITEMS = 1_000


def test_delete_half_the_catalogue(api: Client) -> None:
    assert api.get("/stats")["items"] == PRISTINE_ITEMS
    for number in range(0, PRISTINE_ITEMS, 2):
        assert api.request("DELETE", f"/items/item-{number}")[0] == 200
    assert api.get("/stats") | {"boot_seconds": None} == {
        "items": PRISTINE_ITEMS // 2,
        "words": 500,
        "changes": PRISTINE_ITEMS // 2,
        "boot_seconds": None,
    }


def test_update_an_item(api: Client) -> None:
    assert api.get("/items/item-7") == {"price": 7, "stock": 10}
    assert api.request("PUT", "/items/item-7", {"price": 700, "stock": 0})[0] == 200
    assert api.get("/items/item-7") == {"price": 700, "stock": 0}


@pytest.mark.parametrize("round_", range(3))
def test_state_is_pristine(api: Client, round_: int) -> None:
    stats = api.get("/stats")
    assert stats["changes"] == 0
    assert stats["items"] == PRISTINE_ITEMS
    assert api.get("/items/item-7") == {"price": 7, "stock": 10}
    assert api.request("GET", "/items/new-item")[0] == 404
    api.request("PUT", "/items/new-item", {"round": round_})


def test_the_index_survives_every_restore(api: Client, service: ContainerHandle) -> None:
    documents = api.get("/search?q=w002")["documents"]
    assert documents
    assert documents == sorted(documents)
    assert api.get("/stats")["boot_seconds"] >= 3.0
    # The boot happened once, before the checkpoint. A restored container's log holds only
    # what the process printed since its restore: the boot lines are not there, because the
    # restored process never booted.
    assert "building the index" not in service.logs()
