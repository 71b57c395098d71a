"""What prepare() puts on the shelves; shared by conftest.py and the tests.

(Tests import it as ``inventory_data``: ``from conftest import ...`` would pick up whichever
conftest.py pytest imported last when several directories are run together.)
"""

from __future__ import annotations

INVENTORY = {"apples": 10, "pears": 4, "plums": 0}
