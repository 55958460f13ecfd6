"""The layout's rules, checked on the code: imports run one way, jobs stay out of the library,
pictures live in one module, every registry names its valid entries, the Space contract holds."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def python_files(package: str):
    return sorted((REPO / package).rglob("*.py"))


def test_strategies_import_nothing_from_supernet():
    offenders = {str(f.relative_to(REPO)): sorted(m for m in imported_modules(f) if m.split(".")[0] == "supernet")
                 for f in python_files("strategies")}
    assert not {f: m for f, m in offenders.items() if m}


def test_library_modules_import_no_job():
    library = [f for f in python_files("supernet") if "jobs" not in f.parts]
    offenders = {str(f.relative_to(REPO)): sorted(m for m in imported_modules(f) if m.startswith("supernet.jobs"))
                 for f in library}
    assert not {f: m for f, m in offenders.items() if m}


def test_only_the_plots_module_draws():
    drawing = [str(f.relative_to(REPO)) for f in python_files("supernet") + python_files("strategies")
               if any(m.split(".")[0] == "matplotlib" for m in imported_modules(f))]
    assert drawing == ["supernet/plots.py"]


def test_importing_strategies_loads_no_training_stack():
    code = ("import sys, numpy as np, jax, strategies\n"
            "from strategies.space import Decisions\n"
            "space = Decisions([('a', ['x', 'y']), ('b', ['p', 'q', 'r'])])\n"
            "s = strategies.get('evolution', space)\n"
            "state = s.init(jax.random.key(0))\n"
            "archs, state = s.ask(jax.random.key(1), state, 2)\n"
            "s.tell(state, archs, np.ones(2))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('supernet', 'flax', 'optax')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "supernet" not in out.stdout


def test_every_job_module_has_run():
    from supernet import jobs
    for name in jobs.JOBS.names():
        assert callable(jobs.get(name).run), name


@pytest.mark.parametrize("lookup", [
    lambda: __import__("supernet.spaces", fromlist=["get"]).get("nas_bench_20"),
    lambda: __import__("supernet.data", fromlist=["get"]).get("mnist"),
    lambda: __import__("strategies").get("evolutoin", None),
    lambda: __import__("supernet.jobs", fromlist=["get"]).get("serach"),
])
def test_registries_suggest_the_closest_name(lookup):
    with pytest.raises(ValueError, match=r"did you mean '\w+'\?\); valid: "):
        lookup()


def test_a_space_missing_part_of_the_contract_fails_at_definition():
    from supernet.spaces import Space
    with pytest.raises(TypeError, match=r"lacks standalone, .*parameter_free: in a Space, standalone\(\.\.\.\) must"):
        class HalfSpace(Space):  # noqa: F841 - defining it is the test
            def supernet(self, mixed=False, **options):
                return None


def test_version_matches_pyproject():
    import supernet
    text = (REPO / "pyproject.toml").read_text()
    assert f'version = "{supernet.__version__}"' in text


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of supernet/ and strategies/ -> the project modules it imports, at any depth
    (`from package import module` counts as importing the module, not the package)."""
    files = python_files("supernet") + python_files("strategies")
    modules = {module_name(f) for f in files}
    graph = {}
    for f in files:
        edges = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if full in modules else node.module)
        graph[module_name(f)] = {e for e in edges if e in modules and e != module_name(f)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_job_imports_another_job():
    """Jobs share only the `supernet.jobs` package's helpers; library code lives in the library."""
    jobs = {module_name(f) for f in python_files("supernet/jobs") if f.name != "__init__.py"}
    graph = import_graph()
    offenders = {job: sorted(graph[job] & jobs) for job in jobs if graph[job] & jobs}
    assert not offenders


def test_job_names_match_module_names():
    from supernet import jobs
    assert {name: jobs.JOBS.get(name) for name in jobs.JOBS.names()} == \
        {name: f"supernet.jobs.{name}" for name in jobs.JOBS.names()}


def test_every_public_function_and_class_says_what_it_does():
    """Public functions, classes and their public methods in the library carry a docstring."""
    undocumented = []
    for path in sorted((REPO / "supernet").rglob("*.py")) + sorted((REPO / "strategies").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            members = [node]
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                members += [m for m in node.body if isinstance(m, ast.FunctionDef)]
            undocumented += [f"{path.relative_to(REPO)}:{m.lineno} {m.name}" for m in members
                             if isinstance(m, (ast.FunctionDef, ast.ClassDef)) and not m.name.startswith("_")
                             and not ast.get_docstring(m)]
    assert not undocumented, "add a docstring (what it takes and returns) to: " + ", ".join(undocumented)
