"""The import direction of ARCHITECTURE.md, checked on the source with `ast` (nothing imported).

losses, nn   -> nothing of gen_jax but themselves
models       -> nn (and itself)
gen_jax      -> never experiments or benchmarks
nn.xla_cpu   -> one door: nothing outside the package imports its modules (gen_jax,
                experiments and benchmarks are checked; tests are exempt, since they test
                the internals, and so is the one benchmark named in BACKEND_INTERNALS_USED);
                and no import cycle among its modules
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


def _imports(source: str, module: str, is_package: bool):
    """Every import anywhere in `source` (functions included), as (prefix, names): `import
    a.b` gives ("a.b", ()); `from a.b import c, d` gives ("a.b", ("c", "d")), a relative
    one resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            yield prefix, tuple(alias.name for alias in node.names if alias.name != "*")


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module imported anywhere in `source` (functions included).

    `from a.b import c` yields both `a.b` and `a.b.c` (c may be a submodule); relative
    imports are resolved against `module`.
    """
    names = set()
    for prefix, members in _imports(source, module, is_package):
        names.add(prefix)
        names.update(f"{prefix}.{name}" for name in members)
    return names


def _sources(*roots: Path, at_least: int = 10):
    """(module name, is a package, source) of every file under ``roots`` (default gen_jax)."""
    files = sorted(f for root in roots or (PACKAGE,) for f in root.rglob("*.py"))
    assert len(files) > at_least, f"found only {len(files)} files under {roots or PACKAGE}"
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


def test_experiments_and_benchmarks_never_import_each_other():
    # One experiment importing another (or a benchmark) means a helper two of them need
    # lives in one of them: it belongs in the library.
    bad = []
    for folder, other in (("experiments", "benchmarks"), ("benchmarks", "experiments")):
        for module, is_pkg, source in _sources(ROOT / folder, at_least=5):
            for name in imported_modules(source, module, is_pkg):
                if _within(name, (other,)) or (
                    folder == "experiments" and _within(name, (folder,))
                ):
                    bad.append(f"{module} imports {name}")
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


# --- The CPU convolution backend: one door, no cycle. -----------------------------------------

BACKEND = "gen_jax.nn.xla_cpu"
BACKEND_DIR = PACKAGE / "nn" / "xla_cpu"
# Code outside the backend that may import its modules, and why. tests/ is not checked at
# all: its tests of the backend test the internals (the product-order rule, the tuner with
# its timing substituted) and say so where they import them.
BACKEND_INTERNALS_USED = {
    "benchmarks.vgg_layer_speed": "reports the private product-order rule `_kernel_first` "
    "beside the two orders it times",
}


def _backend_modules() -> set[str]:
    return {name for name, _, _ in _sources(BACKEND_DIR, at_least=2)}


def _backend_internals_imported(source: str, module: str, is_package: bool, modules) -> set:
    """The backend's modules (not the package itself) that `source` imports."""
    return {n for n in imported_modules(source, module, is_package) if n in modules - {BACKEND}}


def test_nothing_outside_the_backend_imports_its_modules():
    modules = _backend_modules()
    roots = (PACKAGE, ROOT / "experiments", ROOT / "benchmarks")
    used = {}
    for module, is_pkg, source in _sources(*roots):
        outside = not _within(module, (BACKEND,))
        if outside and (found := _backend_internals_imported(source, module, is_pkg, modules)):
            used[module] = found
    bad = [f"{m} imports {sorted(n)}" for m, n in used.items() if m not in BACKEND_INTERNALS_USED]
    assert not bad, f"import the backend only as {BACKEND} (its __init__ is the door):\n" + (
        "\n".join(bad)
    )
    # Each exemption is still needed: a stale one would hide a new use.
    stale = sorted(set(BACKEND_INTERNALS_USED) - set(used))
    assert not stale, f"BACKEND_INTERNALS_USED names modules that no longer need it: {stale}"


def import_edges(source: str, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The members of ``modules`` that ``source`` imports, anywhere (functions included).

    ``from P import x`` is an edge to ``P.x`` when that is one of ``modules`` (a submodule;
    importing it runs P's ``__init__`` first, but only to reach it), else to ``P``.
    """
    edges = set()
    for prefix, members in _imports(source, module, is_package):
        subs = [f"{prefix}.{name}" for name in members]
        edges.update(sub if sub in modules else prefix for sub in subs or [prefix])
    return (edges & modules) - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (node -> successors) as [a, b, ..., a], or None if acyclic."""
    state: dict[str, int] = {}  # 1: on the current path; 2: finished.
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_backend_has_no_import_cycle():
    modules = _backend_modules()
    sources = _sources(BACKEND_DIR, at_least=2)
    graph = {m: import_edges(src, m, pkg, modules) for m, pkg, src in sources}
    # The door imports the modules; none of them imports the door back.
    assert graph[BACKEND] and not any(BACKEND in edges for m, edges in graph.items())
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in the backend: " + " -> ".join(cycle)


def test_cycle_checker_sees_cycles_and_submodule_imports():
    modules = {"p", "p.a", "p.b"}
    assert import_edges("from p import a", "p.b", False, modules) == {"p.a"}
    assert import_edges("from p import thing", "p.b", False, modules) == {"p"}
    assert import_edges("from .a import f", "p.b", False, modules) == {"p.a"}
    assert import_edges("def f():\n    import p.a", "p.b", False, modules) == {"p.a"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    # The door's own names are not its modules.
    modules = _backend_modules()
    source = "from gen_jax.nn.xla_cpu import conv_general_dilated, _tuning"
    assert _backend_internals_imported(source, "x", False, modules) == {f"{BACKEND}._tuning"}


# --- The benchmarks' PyTorch reference: one module imports torch. ----------------------------

TORCH_REFERENCE = "benchmarks.torch_reference"


def test_only_the_torch_reference_imports_torch():
    """Every PyTorch reference lives in one module, which imports torch inside its functions
    (so the benchmarks import, and run their gen_jax rows, without torch)."""
    importers = {
        module: source
        for module, is_pkg, source in _sources(ROOT / "benchmarks")
        if any(_within(n, ("torch",)) for n in imported_modules(source, module, is_pkg))
    }
    others = sorted(set(importers) - {TORCH_REFERENCE})
    assert not others, f"only {TORCH_REFERENCE} may import torch; so do: {others}"
    assert TORCH_REFERENCE in importers, f"{TORCH_REFERENCE} no longer imports torch"
    top_level = [
        ast.unparse(node)
        for node in ast.parse(importers[TORCH_REFERENCE]).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any(
            _within(name, ("torch",))
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [])
            + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        )
    ]
    assert not top_level, f"{TORCH_REFERENCE} imports torch at module level: {top_level}"
