"""The package's layers (issue 9.3): a module imports only its own part or lower layers, found by parsing
every import statement of suite/ (function-level imports included), so a cycle cannot creep back in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "suite"

# Lowest first (PLAN / issue 9.3). The shared helpers of layer 0 may use one another; parts of one
# other layer (models, data and metrics) do not import each other.
LAYERS = (
    ("suite", "suite.files", "suite.env", "suite.checkpoint", "suite.overrides", "suite.lock"),
    ("suite.models", "suite.data", "suite.metrics"),
    ("suite.evaluate",),
    ("suite.train",),
    ("suite.profiling",),
    ("suite.analysis",),
    ("suite.report",),
    ("suite.cli",),
)
ALIASES = {"suite.__main__": "suite.cli"}  # `python -m suite` is the command line
SHARED = LAYERS[0]


def part_of(module: str) -> str:
    """The layered part a dotted module name belongs to (its longest listed prefix)."""
    module = ALIASES.get(module, module)
    parts = [p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")]
    return max(parts, key=len)


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def suite_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a suite module in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from suite import files` imports suite.files: judge the submodule where there is one.
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                exists = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").is_file() or (
                    PACKAGE.parent / Path(*candidate.split("."))
                ).is_dir()
                found.append((node.lineno, candidate if exists else base))
    return [(line, name) for line, name in found if name == "suite" or name.startswith("suite.")]


def violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = part_of(module_name(path))
        for line, target in suite_imports(path):
            dest = part_of(target)
            if dest == source or (dest in SHARED and layer_of(source) > 0):
                continue
            if dest in SHARED and source in SHARED:
                continue
            if layer_of(dest) >= layer_of(source):
                problems.append(
                    f"{path.relative_to(root.parent)}:{line}: {source} (layer {layer_of(source)}) "
                    f"imports {target} (layer {layer_of(dest)})"
                )
    return problems


def test_every_module_belongs_to_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        part_of(module_name(path))  # max() of an empty list fails for an unlisted part


def test_no_module_imports_its_own_or_a_higher_layer() -> None:
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch) -> None:
    # evaluate importing train (the cycle issue 9.3 removed) and models importing data must be found.
    fake = tmp_path / "suite"
    for folder, text in (
        ("evaluate", "from suite.train.trainer import train\n"),
        ("models", "def f():\n    from suite.data import io\n"),
        ("train", "from suite.evaluate import evaluate\n"),
    ):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text(text)
    (fake / "data").mkdir()
    (fake / "data" / "io.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = violations(fake)
    assert len(found) == 2, found
    assert "suite.evaluate (layer 2) imports suite.train.trainer (layer 3)" in found[0]
    assert "suite.models (layer 1) imports suite.data.io (layer 1)" in found[1]


@pytest.mark.parametrize("module", ["suite.files", "suite.env", "suite.overrides", "suite.train", "suite.cli"])
def test_shared_helpers_import_no_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
