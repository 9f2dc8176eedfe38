"""The import-linter contracts in pyproject.toml hold on the tree, and fail on a violation."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "tools", "experiments", "evaluators", "operators")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_tree(tmp: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


@pytest.fixture(scope="module")
def linter() -> Path:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} missing: install the dev extra (`make install`)")
    return LINT_IMPORTS


def test_contracts_hold_on_the_tree(linter, tmp_path):
    result = lint_imports(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


VIOLATIONS = {
    "upward import": (
        "operators/core/recipe.py",
        "import experiments.space",
        "Layers: agent > tools > experiments > evaluators > operators BROKEN",
        "operators.core.recipe -> experiments.space",
    ),
    "engine importing a family": (
        "operators/core/executor.py",
        "import operators.filters.length_filter",
        "Inside operators: profiling > operator families",
        "operators.core.executor -> operators.filters.length_filter",
    ),
    "cycle between sibling modules": (
        "operators/core/digest.py",
        "import operators.core.run",
        "No import cycles between sibling packages or modules BROKEN",
        "No cycles are allowed in operators.core",
    ),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_violation_breaks_a_contract(linter, tmp_path, case):
    module, line, contract, detail = VIOLATIONS[case]
    root = copy_tree(tmp_path)
    append(root / module, line + "  # noqa")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert contract in result.stdout
    assert detail in result.stdout


def test_a_shadowing_top_level_package_is_refused(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text('"""Another distribution\'s top-level `tools`."""\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import agent"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        f"the package 'tools' resolves to {tmp_path / 'tools' / '__init__.py'}, not to this checkout" in result.stderr
    )
    clean = subprocess.run([sys.executable, "-c", "import agent"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stderr
