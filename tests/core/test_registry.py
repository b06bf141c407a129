"""Registry: valid names listed, duplicates refused."""

from __future__ import annotations

import pytest

from edgecv.core.errors import EdgecvError
from edgecv.core.registry import Registry


def test_registry_lists_valid_names_and_refuses_duplicates():
    reg: Registry[int] = Registry("widget")
    reg.add("one", 1)

    @reg.register("two")
    def _two():
        return 2

    assert reg.names() == ["one", "two"] and "two" in reg and len(reg) == 2
    with pytest.raises(EdgecvError, match="unknown widget 'three'; choose one of: one, two"):
        reg.get("three")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", 3)
