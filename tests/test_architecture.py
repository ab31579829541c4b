"""The shape of the code: layers that import only downwards, no import cycles, packages that say what they are."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tasks_app"


def test_the_import_contracts_hold():
    """Layers, no Django below the models, no import cycle at any depth (pyproject.toml)."""
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is not installed (requirements-dev.txt)"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_few_loose_modules_in_the_app():
    loose = sorted(p.name for p in APP.glob("*.py"))
    assert len(loose) <= 8, loose


@pytest.mark.parametrize(
    "package",
    sorted(
        p.parent.relative_to(ROOT).as_posix()
        for p in APP.glob("*/__init__.py")
        if p.parent.name not in {"migrations", "management"}
    ),
)
def test_each_package_says_what_it_is_and_is_not(package):
    docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
    assert len(docstring.split()) >= 25, f"{package}/__init__.py needs a docstring saying what it holds"
    assert "not" in docstring, f"{package}/__init__.py should say what it is not"


def test_function_local_imports_say_why():
    """An import inside a function is the exception: each one carries a comment saying why."""
    silent = []
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        if not _explained(lines, sub.lineno - 1, sub.end_lineno):
                            silent.append(f"{path.relative_to(ROOT)}:{sub.lineno}")
    assert not silent, silent


def _explained(lines, first: int, end: int) -> bool:
    """A comment on the import, or on the import block it belongs to, or on the line above that block."""
    while first > 0 and lines[first - 1].strip().startswith(("from ", "import ", "#")):
        first -= 1
    return any("#" in line for line in lines[first:end])
