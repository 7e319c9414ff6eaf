"""The package's import graph, read from the source with `ast`: no cycle, every import goes
down the layers (docs/guide/architecture.md), imports inside functions only with their
reason in a comment, no Snakemake anywhere, and `import vitprobe` without torch."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "vitprobe"

# Layer of each module, bottom (0) up: an import may go to the same layer or below.
LAYERS = [
    ["vitprobe", "vitprobe.errors", "vitprobe.atomic", "vitprobe.columns", "vitprobe.search.walk", "vitprobe.stats",
     "vitprobe.paper", "vitprobe.jobserver"],
    ["vitprobe.config.identity", "vitprobe.config.job", "vitprobe.config.paths", "vitprobe.data.registry"],
    ["vitprobe.device", "vitprobe.data.*", "vitprobe.models.*", "vitprobe.models"],
    ["vitprobe.analysis.*"],
    ["vitprobe.probes", "vitprobe.probes.*"],
    ["vitprobe.catalog"],
    ["vitprobe.results", "vitprobe.config.checks", "vitprobe.search.plan", "vitprobe.config.plan",
     "vitprobe.claims", "vitprobe.claims.*", "vitprobe.config.load", "vitprobe.config.cost"],
    ["vitprobe.training.*", "vitprobe.search.steps", "vitprobe.probe_runner", "vitprobe.report.scorecard"],
    ["vitprobe.figures", "vitprobe.figures.*"],
    ["vitprobe.api", "vitprobe.report.digest", "vitprobe.report.reference", "vitprobe.cli", "vitprobe.launch",
     "vitprobe.__main__"],
]
PACKAGES = {"vitprobe.config", "vitprobe.data", "vitprobe.search", "vitprobe.training",
            "vitprobe.analysis", "vitprobe.report"}  # docstring-only __init__ files: layer of nothing


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        for pattern in layer:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return i
    raise AssertionError(f"{module}: not in LAYERS of tests/test_layout.py; give it its layer")


def _target(node, module: str) -> list[str]:
    """The vitprobe modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "vitprobe"]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
    if base.split(".")[0] != "vitprobe":
        return []
    names = [f"{base}.{a.name}" for a in node.names]
    return [n if n in MODULES else base for n in names]


def _imports():
    """(module, imported module, line, inside a function) for every vitprobe import."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inner = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _target(node, module):
                    if target != module:
                        found.append((module, target, node.lineno, id(node) in inner))
    return found


def test_no_import_cycle():
    graph = {}
    for a, b, _, _ in _imports():
        graph.setdefault(a, set()).add(b)
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_imports_go_down_the_layers():
    # `vitprobe` itself re-exports load_checkpoint and load_model lazily, on first use (its
    # __getattr__): the one import that may go up, from inside a function.
    upward = [f"{a}:{line} imports {b} (layer {_layer(b)} > {_layer(a)})" for a, b, line, inner in _imports()
              if b not in PACKAGES and a not in PACKAGES and _layer(b) > _layer(a) and not (a == "vitprobe" and inner)]
    assert not upward, "\n".join(upward)


def test_imports_inside_functions_say_why():
    """An import inside a function is for an optional or heavy dependency, with its reason in
    a comment on its line or the line above."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        tree = ast.parse(path.read_text())
        for f in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(f):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    here, above = lines[node.lineno - 1], lines[node.lineno - 2]
                    if "#" not in here and not above.strip().startswith("#"):
                        silent.append(f"{path.relative_to(REPO)}:{node.lineno}: {here.strip()}")
    assert not silent, "imports inside functions without a reason:\n" + "\n".join(silent)


def test_the_package_never_imports_snakemake():
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "snakemake" for a in node.names), module
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "snakemake", module


def test_import_vitprobe_loads_no_torch():
    code = "import sys, vitprobe, vitprobe.config.identity, vitprobe.data.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# The verbs that read and write tables, draw or check names: none may pay for torch (about 5 s
# of CPU per process); a probe's declaration, the catalogue and the schema come without it.
TORCH_FREE_VERBS = ["aggregate", "plot", "scorecard", "digest", "docs", "tables", "prepare-corruptions"]


def test_table_verbs_import_no_torch():
    code = ("import sys; from vitprobe import catalog, cli; cli.preload(sys.argv[1]); "
            "[catalog.module_of(p) for p in catalog.PROBES]; print(sorted({'torch', 'timm'} & set(sys.modules)))")
    for verb in TORCH_FREE_VERBS:
        out = subprocess.run([sys.executable, "-c", code, verb], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]", f"vitprobe {verb} imports {out.stdout.strip()}"


def test_each_verb_imports_what_verb_imports_lists():
    """A command's imports are those `cli.verb_imports` gives for its verb (what `preload` and
    the job server import up front): read from the command's own function."""
    from vitprobe import cli

    tree = ast.parse((PACKAGE / "cli.py").read_text())
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    for verb, modules in cli.VERB_IMPORTS.items():
        func = functions[f"cmd_{verb.replace('-', '_')}"]
        called = {n.func.id for n in ast.walk(func) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        nodes = [n for f in [func, *(functions[c] for c in called if c in functions)] for n in ast.walk(f)
                 if isinstance(n, ast.ImportFrom)]
        imported = {(f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in MODULES else n.module)
                    for n in nodes for a in n.names}
        assert imported == set(modules), f"vitprobe {verb}: imports {sorted(imported)}, VERB_IMPORTS {modules}"
