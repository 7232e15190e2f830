"""The test tree itself: pytest imports test files by their base name (the folders have no __init__.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert len(names) > 30
    assert [name for name, count in names.items() if count > 1] == [], (
        "two test files share a name: pytest collects only the first (import file mismatch); rename one")
