"""The import contracts of pyproject.toml hold (layers, pure decisions, independent targets,
errors at the bottom): `lint-imports` keeps every one and breaks none."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_layers_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    completed = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    counted = re.search(r"Contracts: (\d+) kept, (\d+) broken", completed.stdout)
    assert counted is not None, completed.stdout
    assert int(counted.group(2)) == 0
    assert int(counted.group(1)) >= 4, "a contract was dropped from pyproject.toml"


def test_test_module_names_are_unique() -> None:
    # pytest imports test modules by basename (rootdir-relative, no packages): two files
    # with one name in different folders break collection of the whole suite.
    names = [path.name for path in (REPO / "tests").rglob("test_*.py")]
    assert sorted(set(names)) == sorted(names)
