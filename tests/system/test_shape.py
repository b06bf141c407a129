"""The codebase keeps its shape (tools/shape.py measures it): no import cycle between edgecv modules, few loose
top-level modules, no file over 400 lines, few function-local imports of edgecv, and a short README whose
links into docs/ all resolve."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import shape  # noqa: E402


def test_no_import_cycle_and_the_limits_hold():
    s = shape.measure()
    assert s.cycles == [], s.cycles
    assert len(s.loose_modules) <= 10, s.loose_modules
    assert not s.long_files, s.long_files
    assert s.function_local_imports <= 50, s.local_import_sites
    assert s.readme_lines <= 300


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert shape._cycles(graph) == [["a", "b", "c"]]
    assert shape._cycles({"a": {"b"}, "b": set()}) == []


def test_every_docs_link_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), (page.name, target)
