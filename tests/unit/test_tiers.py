"""The tier mechanism (tests/fixtures/tiers.py) on a throwaway suite run by pytest itself."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
from pathlib import Path

from tests.fixtures.tiers import mark_and_order


def pytest_collection_modifyitems(config, items):
    mark_and_order(items, Path(__file__).parent / "suite")
"""
INI = """
[pytest]
markers =
    unit: u
    backends: k
    app: a
    browser: b
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """One test in each tier folder and one flat file, named so that pytest's own (alphabetical)
    order would not put the unit test first."""
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    files = {
        "browser/test_a_page.py": "browser",
        "app/test_b_app.py": "app",
        "backends/test_c_backend.py": "backends",
        "unit/test_z_unit.py": "unit",
        "test_a_flat.py": "flat",
    }
    for path, name in files.items():
        target = pytester.path / "suite" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"def test_{name}():\n    pass\n")
    return pytester


def collected(result: pytest.RunResult) -> list[str]:
    return [line.rsplit("::", 1)[1] for line in result.outlines if "::" in line]


def test_the_unit_tier_runs_first_and_the_browser_tier_last(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q", "suite")
    assert collected(result) == ["test_unit", "test_backends", "test_app", "test_flat", "test_browser"], result.outlines


@pytest.mark.parametrize("tier", ["unit", "backends", "app", "browser"])
def test_each_folder_carries_its_tier_marker(suite: pytest.Pytester, tier: str) -> None:
    result = suite.runpytest("-v", "suite", "-m", tier, "--strict-markers")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines([f"*::test_{tier} PASSED*"])


def test_files_outside_the_tier_folders_have_no_tier(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-v", "suite", "-m", "not (unit or backends or app or browser)")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["*::test_flat PASSED*"])
