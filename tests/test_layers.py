"""The package's layering, read from the source with ``ast`` (nothing is imported or run).

Data flows one way: data -> train -> trainable -> search -> run layer -> (finalfit | report | denoise). The three top
floors are siblings: none imports another, lazy imports inside functions included. Models and the pure PyTorch
training code never import Ray; W&B is imported in one module; modules and functions stay small enough to read.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tuneae"
SIBLINGS = ("tuneae.finalfit", "tuneae.report", "tuneae.search", "tuneae.denoise")
"""The top floors: each may import the run layer and everything below it, never one another."""
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _floor(name: str) -> str | None:
    """The sibling top floor a module belongs to, or None."""
    return next((s for s in SIBLINGS if name == s or name.startswith(s + ".")), None)


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _floor(m)))
def test_top_floors_import_none_of_each_other(module):
    own = _floor(module)
    bad = sorted(i for i in _imports(MODULES[module], module) if _floor(i) not in (None, own))
    assert not bad, f"{module} imports {bad}: finalfit, report, search and denoise share only the layers below them"


def test_lower_floors_import_no_top_floor():
    bad = {m: sorted(i for i in _imports(p, m) if _floor(i)) for m, p in MODULES.items() if not _floor(m)}
    bad = {m: v for m, v in bad.items() if v}
    assert not bad, f"modules below the top floors import them: {bad}"


def test_models_and_training_code_never_import_ray():
    pure = [m for m in MODULES if m.startswith("tuneae.models")
            or m in ("tuneae.train", "tuneae.recipe", "tuneae.losses", "tuneae.rules", "tuneae.pca")]
    assert pure, "the layering test found no model modules"
    bad = {m: sorted(i for i in _imports(MODULES[m], m) if i.split(".")[0] == "ray") for m in pure}
    assert not {m: v for m, v in bad.items() if v}


def test_wandb_is_imported_in_one_module():
    users = sorted(m for m, p in MODULES.items() if any(i.split(".")[0] == "wandb" for i in _imports(p, m)))
    assert users == ["tuneae.tracking"], users


def test_modules_and_functions_stay_small():
    long_modules = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {}
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{m}.{node.name}"] = length
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_the_layering_check_sees_a_violation(tmp_path):
    """The import reader resolves relative and lazy imports, so the checks above can fail."""
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from ..report import make\n    import tuneae.search.cli\n")
    found = _imports(src, "tuneae.finalfit.x")
    assert "tuneae.report.make" in found and "tuneae.search.cli" in found
    assert _floor("tuneae.report.make") == "tuneae.report"
