"""The import direction of ARCHITECTURE.md, checked on the source with `ast` (nothing imported).

losses, nn   -> nothing of gen_jax but themselves
models       -> nn (and itself)
gen_jax      -> never experiments or benchmarks
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gen_jax"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module imported anywhere in `source` (functions included).

    `from a.b import c` yields both `a.b` and `a.b.c` (c may be a submodule); relative
    imports are resolved against `module`.
    """
    names = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _sources():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10, f"found only {len(files)} files under {PACKAGE}"
    return [(_module_name(f), f.name == "__init__.py", f.read_text()) for f in files]


def _ours(names):
    # The bare package is left out: `from gen_jax import nn` names it only as nn's container.
    return {n for n in names if n.startswith("gen_jax.")}


def _within(name, allowed):
    return any(name == a or name.startswith(a + ".") for a in allowed)


RULES = {
    "gen_jax.losses": ("gen_jax.losses",),
    "gen_jax.nn": ("gen_jax.nn",),
    "gen_jax.models": ("gen_jax.models", "gen_jax.nn"),
}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer):
    allowed = RULES[layer]
    checked, bad = 0, []
    for module, is_pkg, source in _sources():
        if not _within(module, (layer,)):
            continue
        checked += 1
        for name in _ours(imported_modules(source, module, is_pkg)):
            if not _within(name, allowed):
                bad.append(f"{module} imports {name}")
    assert checked, f"no module found in {layer}"
    assert not bad, f"{layer} may import only {allowed}:\n" + "\n".join(bad)


def test_library_never_imports_experiments_or_benchmarks():
    bad = [
        f"{module} imports {name}"
        for module, is_pkg, source in _sources()
        for name in imported_modules(source, module, is_pkg)
        if _within(name, ("experiments", "benchmarks"))
    ]
    assert not bad, "\n".join(bad)


# --- The checker itself. ---------------------------------------------------------------------


def test_checker_resolves_all_import_forms():
    source = """
import numpy as np
import gen_jax.nn.conv_transpose
from gen_jax import losses
from gen_jax.models.dcgan import DCGANGenerator
from . import sibling
from ..train import steps

def f():
    import experiments.dcgan
"""
    names = imported_modules(source, "gen_jax.models.dcgan", is_package=False)
    assert {
        "numpy",
        "gen_jax.nn.conv_transpose",
        "gen_jax.losses",
        "gen_jax.models.dcgan",
        "gen_jax.models.sibling",
        "gen_jax.train",
        "gen_jax.train.steps",
        "experiments.dcgan",
    } <= names
    assert imported_modules("from . import x", "gen_jax.nn", is_package=True) >= {"gen_jax.nn.x"}
    assert _ours({"gen_jax", "gen_jax.nn", "numpy"}) == {"gen_jax.nn"}
    assert not _within("gen_jax.train.steps", RULES["gen_jax.models"])
    assert not _within("gen_jax.nnx", RULES["gen_jax.nn"])
    assert _within("gen_jax.nn.conv_transpose", RULES["gen_jax.models"])
