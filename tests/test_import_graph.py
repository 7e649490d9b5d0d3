"""The dependencies between our own packages: no import cycles, and they point one way.

Contract. Among the modules of ``agents_app``, ``sessions_app``, ``console``, ``infra`` and ``akplatform``:

1. no import cycle, counting every import in a file: module level, function bodies, ``try`` blocks;
2. dependencies point one way, ``console`` -> ``agents_app`` -> ``sessions_app``, and ``infra`` (the
   shared infrastructure) knows none of the apps (``FORBIDDEN``):
   a package neither imports a package it must not know, nor names it in a string, where no
   import shows the dependency. Such a string is a whole string constant in Python (a docstring
   or a sentence never is one) that is

   - an app label or a dotted path into the package: ``apps.get_model("agents_app", "Run")``,
     ``get_model("agents_app.Run")``, ``Q(content_type__app_label="agents_app")``,
     ``send_task("agents_app.tasks.execute_run")``, ``import_string("agents_app.x.Y")``;
   - an admin URL name, ``"admin:<app label>_<model>_<view>"`` (``reverse(...)``, ``redirect(...)``),
     also in a ``{% url 'admin:<app label>_...' %}`` tag of a file under the package's ``templates/``.

   App labels are the package names.

How the graph is built (statically with ``ast``; nothing is imported):

- Modules: every ``.py`` under the packages except ``migrations/`` and ``tests`` folders and
  ``test_*.py`` files; ``pkg/__init__.py`` is the module ``pkg``.
- Imports under ``if TYPE_CHECKING:`` are left out (its ``else`` branch is kept): they never run,
  so they cannot take part in an import-time cycle nor load agents_app at run time.
- An import points at the deepest project module it names: ``import a.b`` -> ``a.b``;
  ``from a import b`` -> ``a.b`` when ``a/b.py`` or ``a/b/__init__.py`` exists, else ``a`` (``b``
  is then a name defined in ``a/__init__.py``); relative imports are resolved against the file's
  package; imports of anything else (stdlib, Django, ...) are ignored.
- The parent packages an import initialises on the way (``a`` for ``a.b``) are not edges. So
  ``pkg/__init__.py`` importing ``pkg.sub`` never makes a cycle by itself; it does when
  ``pkg.sub`` names ``pkg`` itself (``import pkg``, or ``from pkg import name`` with ``name``
  defined in ``__init__``), which is when ``pkg.sub`` needs ``pkg/__init__`` to have run.
- A cycle is a strongly connected component of two modules or more (self-imports are ignored).
  Each is reported as shortest cycles until every import inside the component lies on one, each
  hop with the ``file:line`` of its imports.
- Not seen: dynamic imports (``import_string``, ``importlib``, dotted paths in settings), names
  built at run time (``f"admin:{opts.app_label}_..."``, ``opts|admin_urlname``).
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents_app", "sessions_app", "console", "infra", "akplatform")
#: package -> the packages it must neither import nor name.
FORBIDDEN = {
    "infra": ("agents_app", "sessions_app", "console"),
    "sessions_app": ("agents_app", "console"),
    "agents_app": ("console",),
}
SKIPPED_DIRS = frozenset({"migrations", "tests", "__pycache__"})

#: module -> imported module -> ["path/to/file.py:line", ...]
Graph = dict[str, dict[str, list[str]]]


def module_files(root: Path, packages: Sequence[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``packages`` under ``root``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if SKIPPED_DIRS.intersection(rel.parts[:-1]) or rel.name.startswith("test_"):
                continue
            parts = rel.with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` except those in the body of ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    test = node.test if isinstance(node, ast.If) else None
    type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
    children: Iterable[ast.AST] = node.orelse if type_checking else ast.iter_child_nodes(node)
    for child in children:
        yield from _runtime_imports(child)


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a project module, or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        found = {_deepest(alias.name, modules) for alias in node.names}
    else:
        base = node.module or ""
        if node.level:  # relative: from the file's package, up ``level - 1`` packages
            package = (module if is_package else module.rpartition(".")[0]).split(".")
            anchor = package[: len(package) - node.level + 1] if node.level <= len(package) else []
            base = ".".join([*anchor, *([base] if base else [])])
        found = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _deepest(base, modules) for a in node.names}
    return {target for target in found if target and target != module}


def build_graph(root: Path, packages: Sequence[str]) -> Graph:
    """The runtime import graph of ``packages`` (directories under ``root``), as the module docstring says."""
    modules = module_files(root, packages)
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(root).as_posix()
        for node in _runtime_imports(tree):
            for target in _targets(node, name, path.name == "__init__.py", modules):
                sites = graph[name].setdefault(target, [])
                if f"{where}:{node.lineno}" not in sites:
                    sites.append(f"{where}:{node.lineno}")
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan: the components of two modules or more, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(component for component in components if len(component) > 1)


def _shortest_path(graph: Graph, start: str, goal: str, within: set[str]) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue and goal not in previous:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target in within and target not in previous:
                previous[target] = node
                queue.append(target)
    path: list[str] = []
    step: str | None = goal
    while step is not None:
        path.append(step)
        step = previous[step]
    return path[::-1]


def find_cycles(graph: Graph) -> list[list[str]]:
    """Cycles as ``[a, b, ..., a]``: per component, shortest ones until each of its edges is on one."""
    cycles: list[list[str]] = []
    for component in strongly_connected(graph):
        members, covered = set(component), set[tuple[str, str]]()
        for source in component:
            for target in sorted(graph[source]):
                if target in members and (source, target) not in covered:
                    cycle = [source, *_shortest_path(graph, target, source, members)]
                    covered.update(pairwise(cycle))
                    cycles.append(cycle)
    return cycles


def describe(graph: Graph, cycle: list[str]) -> str:
    hops = "".join(f"\n    {a} -> {b}  ({', '.join(graph[a][b])})" for a, b in pairwise(cycle))
    return " -> ".join(cycle) + hops


def imports_of(graph: Graph, importer: str, imported: str) -> list[str]:
    """``a -> b  (file:line)`` for every import from package ``importer`` into package ``imported``."""

    def within(module: str, package: str) -> bool:
        return module == package or module.startswith(f"{package}.")

    return [
        f"{source} -> {target}  ({site})"
        for source in sorted(graph)
        if within(source, importer)
        for target, sites in sorted(graph[source].items())
        if within(target, imported)
        for site in sites
    ]


@dataclass(frozen=True, order=True)
class NamedApp:
    """A string that names an app where the framework resolves it at run time."""

    path: str
    line: int
    app: str
    text: str

    @property
    def package(self) -> str:
        return self.path.partition("/")[0]


def named_apps(root: Path, packages: Sequence[str]) -> list[NamedApp]:
    """Every string of ``packages`` that names one of them, as the module docstring says: in its
    modules (as ``module_files`` finds them) and in the ``{% url %}`` tags of its templates."""
    labels = "|".join(map(re.escape, packages))
    named = re.compile(rf"admin:({labels})_\w+|({labels})(?:[.:][\w.:]*)?")
    found: list[NamedApp] = []
    for path in module_files(root, packages).values():
        where = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := named.fullmatch(node.value)):
                found.append(NamedApp(where, node.lineno, m[1] or m[2], repr(node.value)))
    url_tag = re.compile(rf"""{{%\s*url\s+["'](admin:({labels})_\w+)""")
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "templates" in path.relative_to(root / package).parts:
                where = path.relative_to(root).as_posix()
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                    found.extend(NamedApp(where, number, m[2], repr(m[1])) for m in url_tag.finditer(line))
    return sorted(found)


def names_of(found: Iterable[NamedApp], package: str, named: str) -> list[str]:
    """``file:line  text`` for every string of ``package`` that names the app ``named``."""
    return [f"{ref.path}:{ref.line}  {ref.text}" for ref in found if ref.package == package and ref.app == named]


@pytest.fixture(scope="module")
def project_graph() -> Graph:
    return build_graph(ROOT, PACKAGES)


def test_no_import_cycles(project_graph: Graph) -> None:
    cycles = find_cycles(project_graph)
    assert not cycles, "import cycles:\n" + "\n".join(describe(project_graph, cycle) for cycle in cycles)


@pytest.fixture(scope="module")
def project_names() -> list[NamedApp]:
    return named_apps(ROOT, PACKAGES)


@pytest.mark.parametrize(("package", "other"), [(p, o) for p, others in FORBIDDEN.items() for o in others])
def test_dependencies_point_one_way(
    project_graph: Graph, project_names: list[NamedApp], package: str, other: str
) -> None:
    found = imports_of(project_graph, package, other) + names_of(project_names, package, other)
    assert not found, f"{package} must neither import nor name {other}:\n" + "\n".join(found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_checker_finds_a_cycle_through_function_bodies(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg import b\n",
            "pkg/b.py": "import os\n\n\ndef g():\n    from .a import f\n",
        },
    )
    graph = build_graph(tmp_path, ["pkg"])
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe(graph, ["pkg.a", "pkg.b", "pkg.a"]) == (
        "pkg.a -> pkg.b -> pkg.a\n    pkg.a -> pkg.b  (pkg/a.py:2)\n    pkg.b -> pkg.a  (pkg/b.py:5)"
    )


def test_checker_passes_a_package_without_cycles(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\n",  # a package importing its submodule: no cycle
            "pkg/a.py": "def f():\n    from . import b\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.a import f\n",
            "pkg/migrations/0001.py": "import pkg.a\n",
        },
    )
    graph = build_graph(tmp_path, ["pkg"])
    assert graph == {"pkg": {"pkg.a": ["pkg/__init__.py:1"]}, "pkg.a": {"pkg.b": ["pkg/a.py:2"]}, "pkg.b": {}}
    assert find_cycles(graph) == []


def test_checker_finds_apps_named_by_strings(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/admin.py": (
                "from django.apps import apps\n"
                "from django.urls import reverse\n"
                "\n"
                "\n"
                "def f():\n"
                '    """Not a name: admin:high_thing_change is text here."""\n'
                '    Thing = apps.get_model("high", "Thing")\n'
                '    Other = get_model("high.Other")\n'
                '    low = apps.get_model("low", "Mine")  # its own: allowed\n'
                '    django = apps.get_model("auth", "User")  # not ours\n'
                '    return reverse("admin:high_thing_changelist"), reverse("admin:auth_user_change")\n'
                'PERMISSIONS = {"high": ["thing"], "highway": [], "auth": ["user"]}\n'
                'TASK = "high.tasks.work"  # a name Celery resolves\n'
                'NOTE = "high.tasks.work is queued by name, not imported"\n'
            ),
            "low/templates/admin/low/page.html": (
                "{% load admin_urls %}\n"
                '<a href="{% url \'admin:high_thing_change\' t.pk %}">x</a> {% url "admin:low_mine_change" 1 %}\n'
                "{% url opts|admin_urlname:'change' 1 %}\n"
            ),
            "low/migrations/0001.py": 'apps.get_model("high", "Thing")\n',
            "high/__init__.py": "",
            "high/views.py": 'from django.urls import reverse\n\nURL = reverse("admin:low_mine_change")\n',
        },
    )
    found = named_apps(tmp_path, ["low", "high"])
    assert names_of(found, "low", "high") == [
        "low/admin.py:7  'high'",
        "low/admin.py:8  'high.Other'",
        "low/admin.py:11  'admin:high_thing_changelist'",
        "low/admin.py:12  'high'",
        "low/admin.py:13  'high.tasks.work'",
        "low/templates/admin/low/page.html:2  'admin:high_thing_change'",
    ]
    assert names_of(found, "low", "low") == [
        "low/admin.py:9  'low'",
        "low/templates/admin/low/page.html:2  'admin:low_mine_change'",
    ]
    assert names_of(found, "high", "low") == ["high/views.py:3  'admin:low_mine_change'"]
