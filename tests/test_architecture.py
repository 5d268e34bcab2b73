"""The architecture of DESIGN.md ("Layout"), checked on the source rather than trusted.

Every module under ``src/medbench`` is parsed (never imported) and every ``import`` in it
is collected: at module level, inside functions and methods, and inside
``if TYPE_CHECKING:`` blocks. An import becomes an edge to the medbench module it names:
relative imports are resolved against the importing module's package, and
``from medbench.x import y`` is an edge to ``medbench.x.y`` when ``y`` is a submodule,
else to ``medbench.x``. Importing a submodule also runs its package's ``__init__``; that
implicit edge is not added (it would make every ``__init__`` that imports its own
submodules look like a cycle).

The checks:

(a) no import cycle among medbench modules. Imports under ``if TYPE_CHECKING:`` are
    exempt from this check only: they never run, so they cannot make an import loop;
    function-level imports are *not* exempt (hiding a cycle in a function is what this
    check is for);
(b) ``medbench.reports`` imports neither ``medbench.codecs`` nor ``medbench.datasets``
    (reports read only the results store);
(c) ``medbench.codecs`` imports neither ``medbench.datasets`` nor ``medbench.training``
    (a codec sees one image);
(d) imports point down the layers of :data:`LAYERS`: cli → reports, training →
    benchmark → codecs, datasets → the bottom (``medbench/__init__``, errors, registry,
    image, text, limits). A module may import its own package, any lower layer, and nothing
    beside or above it (codecs and datasets do not import each other, nor reports and
    training). (b), (c) and (d) count ``TYPE_CHECKING`` imports too: a type-only
    dependency on a higher layer is still a dependency on it;
(e) PSNR is computed in one place, ``medbench/benchmark/metrics/fidelity.py`` (see
    :func:`psnr_formulas` for the pattern).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "medbench"

#: Layer of each unit (a package or a top-level module); higher layers import lower ones.
LAYERS = {
    "medbench": 0,  # medbench/__init__.py only: __version__
    "medbench.errors": 0,
    "medbench.registry": 0,
    "medbench.image": 0,
    "medbench.text": 0,
    "medbench.limits": 0,
    "medbench.folders": 0,
    "medbench.codecs": 1,
    "medbench.datasets": 1,
    "medbench.benchmark": 2,
    "medbench.reports": 3,
    "medbench.training": 3,
    "medbench.writeback": 3,
    "medbench.study": 3,
    "medbench.cli": 4,
    "medbench.cli_args": 3,  # click helpers of the cli (imports nothing of medbench)
    "medbench.__main__": 4,
}
BOTTOM = 0

#: The one module allowed to compute PSNR.
PSNR_HOME = "medbench.benchmark.metrics.fidelity"

OTHER_PARTS = "fixed by the architecture issue's other parts"


@dataclass(frozen=True)
class Edge:
    """One import statement's dependency of ``importer`` on ``imported``."""

    importer: str
    imported: str
    line: int
    type_only: bool

    def __str__(self) -> str:
        kind = " (TYPE_CHECKING)" if self.type_only else ""
        return f"{self.importer} -> {self.imported} (line {self.line}){kind}"


# -- collecting the graph -------------------------------------------------------------------
def find_modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name → file of every module of ``package`` under ``src``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a medbench module (``import a.b.c``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(
    module: str, tree: ast.AST, modules: dict[str, Path], is_package: bool
) -> list[Edge]:
    """The medbench modules ``module`` imports, wherever the import statement is."""
    package = module if is_package else module.rpartition(".")[0]
    edges: list[Edge] = []

    def add(target: str | None, node: ast.stmt, type_only: bool) -> None:
        if target is not None and target != module:
            edges.append(Edge(module, target, node.lineno, type_only))

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_known(alias.name, modules), node, type_only)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in modules else _known(base, modules), node,
                    type_only)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return list(dict.fromkeys(edges))  # ``from x import a, b`` names x once


@dataclass
class Source:
    modules: dict[str, Path]
    trees: dict[str, ast.Module]
    edges: list[Edge]


def load_source(src: Path = SRC, package: str = PACKAGE) -> Source:
    modules = find_modules(src, package)
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
             for name, path in modules.items()}
    edges = [edge for name, tree in trees.items()
             for edge in imports_of(name, tree, modules, modules[name].name == "__init__.py")]
    return Source(modules, trees, edges)


@pytest.fixture(scope="module")
def source() -> Source:
    return load_source()


# -- (a) cycles -------------------------------------------------------------------------------
def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle through each strongly connected group of modules."""
    graph: dict[str, dict[str, Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
    cycles: list[list[Edge]] = []
    covered: set[str] = set()
    for start in sorted(graph):
        if start in covered:
            continue
        # Shortest path from a successor of ``start`` back to ``start`` (BFS).
        parent: dict[str, Edge] = {}
        queue = deque([start])
        seen = {start}
        found = None
        while queue and found is None:
            node = queue.popleft()
            for nxt, edge in sorted(graph.get(node, {}).items()):
                if nxt == start:
                    found = edge
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    parent[nxt] = edge
                    queue.append(nxt)
        if found is None:
            continue
        path = [found]
        while path[0].importer != start:
            path.insert(0, parent[path[0].importer])
        cycles.append(path)
        covered.update(e.importer for e in path)
    return cycles


def test_no_import_cycles(source: Source) -> None:
    cycles = find_cycles([e for e in source.edges if not e.type_only])
    text = "\n".join(
        " -> ".join([c[0].importer] + [f"{e.imported} (line {e.line} of {e.importer})"
                                         for e in c])
        for c in cycles
    )
    assert not cycles, f"import cycles among medbench modules:\n{text}"


# -- (b), (c) forbidden imports ---------------------------------------------------------------
def _within(module: str, unit: str) -> bool:
    return module == unit or module.startswith(unit + ".")


def forbidden(edges: list[Edge], importers: str, imported: tuple[str, ...]) -> list[Edge]:
    return [e for e in edges if _within(e.importer, importers)
            and any(_within(e.imported, unit) for unit in imported)]


def test_reports_import_neither_codecs_nor_datasets(source: Source) -> None:
    bad = forbidden(source.edges, "medbench.reports", ("medbench.codecs", "medbench.datasets"))
    assert not bad, "reports read only the results store, but:\n" + "\n".join(map(str, bad))


def test_codecs_import_neither_datasets_nor_training(source: Source) -> None:
    bad = forbidden(source.edges, "medbench.codecs", ("medbench.datasets", "medbench.training"))
    assert not bad, "a codec sees one image, but:\n" + "\n".join(map(str, bad))


# -- (d) layers -------------------------------------------------------------------------------
def unit_of(module: str) -> str | None:
    """The entry of :data:`LAYERS` a module belongs to (None: not placed in a layer)."""
    if module == PACKAGE:
        return PACKAGE
    units = [u for u in LAYERS if u != PACKAGE and _within(module, u)]
    return max(units, key=len) if units else None


def upward(edges: list[Edge]) -> list[Edge]:
    """Edges from a module to a unit of its own layer or above (other than its own unit)."""
    bad = []
    for edge in edges:
        mine, theirs = unit_of(edge.importer), unit_of(edge.imported)
        if mine == theirs or mine is None or theirs is None:
            continue
        if LAYERS[theirs] < LAYERS[mine] or LAYERS[mine] == LAYERS[theirs] == BOTTOM:
            continue
        bad.append(edge)
    return bad


def test_every_module_is_in_a_layer(source: Source) -> None:
    unplaced = sorted(m for m in source.modules if unit_of(m) is None)
    assert not unplaced, f"add these modules' package to LAYERS: {unplaced}"


def test_imports_point_down_the_layers(source: Source) -> None:
    bad = upward(source.edges)
    lines = [f"{e} [{unit_of(e.importer)} is layer {LAYERS[unit_of(e.importer)]}, "
             f"{unit_of(e.imported)} is layer {LAYERS[unit_of(e.imported)]}]" for e in bad]
    assert not bad, "imports beside or up the layers:\n" + "\n".join(lines)


# -- (e) one PSNR ------------------------------------------------------------------------------
def _is_log10(node: ast.expr) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Name) and func.id == "log10") or (
        isinstance(func, ast.Attribute) and func.attr == "log10"
    )


def psnr_formulas(tree: ast.AST) -> list[int]:
    """Lines computing PSNR: ``10 * log10(a / b)`` or ``20 * log10(a / b)``.

    PSNR is ``10·log10(peak² / MSE)`` (or ``20·log10(peak / RMSE)``): a literal, positive
    10 (or 20) times a ``log10`` (``math.``, ``np.``, ``torch.`` or bare) of a *quotient*,
    in either operand order. That excludes the MS-SSIM dB scale ``-10 * log10(1 - x)``
    (negative factor, and a difference, not a quotient), plain ``log10(rate)`` axes, and
    formulas quoted in docstrings and messages (they are strings, not code). A PSNR
    written as ``10 * log10(peak**2) - 10 * log10(mse)`` would escape it; none exists.
    """
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
            continue
        for factor, other in ((node.left, node.right), (node.right, node.left)):
            if (
                isinstance(factor, ast.Constant)
                and type(factor.value) in (int, float)
                and factor.value in (10, 20)
                and _is_log10(other)
                and other.args
                and isinstance(other.args[0], ast.BinOp)
                and isinstance(other.args[0].op, ast.Div)
            ):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    ("code", "found"),
    [
        ("10.0 * math.log10(peak * peak / err)", True),
        ("10 * np.log10(1.0 / np.maximum(err, 1e-10))", True),
        ("np.log10(peak ** 2 / mse) * 10", True),
        ("20 * torch.log10(peak / rmse)", True),
        ("-10.0 * np.log10(1.0 - x)", False),  # MS-SSIM in dB
        ("np.log10(rate)", False),
        ("10 * np.log10(x)", False),
        ("'10 * math.log10(peak / mse)'", False),
    ],
)
def test_psnr_pattern(code: str, found: bool) -> None:
    assert bool(psnr_formulas(ast.parse(code))) is found


def test_psnr_is_computed_once(source: Source) -> None:
    where = [f"{name} line {line}" for name, tree in source.trees.items()
             for line in psnr_formulas(tree)]
    assert len(where) == 1 and where[0].startswith(PSNR_HOME + " "), (
        f"PSNR must be computed only in {PSNR_HOME} (call benchmark.metrics.psnr), "
        f"found: {where}"
    )


# -- the checks check ---------------------------------------------------------------------------
def _fake_package(tmp_path: Path, files: dict[str, str]) -> Source:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_source(tmp_path, "pkg")


def test_imports_are_resolved_wherever_they_are(tmp_path: Path) -> None:
    src = _fake_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from . import b\n",
        "pkg/a/b.py": "def f():\n    from ..c import thing\n",
        "pkg/a/d.py": "from pkg.a import b\nimport pkg.c.sub\n",
        "pkg/c/__init__.py": "",
        "pkg/c/sub.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from pkg.a.b import f\n",
    })
    got = {(e.importer, e.imported, e.type_only) for e in src.edges}
    assert got == {
        ("pkg.a", "pkg.a.b", False),
        ("pkg.a.b", "pkg.c", False),
        ("pkg.a.d", "pkg.a.b", False),
        ("pkg.a.d", "pkg.c.sub", False),
        ("pkg.c.sub", "pkg.a.b", True),
    }


def test_cycles_are_reported_with_their_path(tmp_path: Path) -> None:
    src = _fake_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/x.py": "import pkg.y\n",
        "pkg/y.py": "def g():\n    import pkg.z\n",
        "pkg/z.py": "from pkg import x\n",
        # A loop closed only by a TYPE_CHECKING import never runs: not a cycle.
        "pkg/u.py": "import pkg.v\n",
        "pkg/v.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.u\n",
    })
    cycles = find_cycles([e for e in src.edges if not e.type_only])
    assert [[(e.importer, e.imported) for e in c] for c in cycles] == [
        [("pkg.x", "pkg.y"), ("pkg.y", "pkg.z"), ("pkg.z", "pkg.x")]
    ]
