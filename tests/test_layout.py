"""The house keeps the paper's figure: the method below the runners, no import cycles, no file name twice.

Every ``import`` in the package (module level or inside a function) is an edge. Layers, bottom up:
the shared base (config, checkpoint, pretrained, distributed), data, the method (``model/``), the
runners (train, eval, bulk, apps), the recipes and the server, the command line. An edge may stay
within a layer or go down, never up.
"""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "dediffusion"
LAYERS = {"config": 0, "checkpoint": 0, "pretrained": 0, "distributed": 0, "data": 1, "model": 2, "train": 3,
          "eval": 3, "bulk": 3, "apps": 3, "configs": 4, "serve": 4, "cli": 5}


def modules() -> dict[str, tuple[pathlib.Path, bool]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _targets(node, name: str, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = name.split(".")[: None if is_pkg else -1]
    base = base[: len(base) - node.level + 1] if node.level else []
    module = ".".join(base + ([node.module] if node.module else []))
    return [f"{module}.{a.name}" for a in node.names]  # a name that is no module resolves to ``module`` below


def edges() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(node, name, is_pkg):
                    if t.split(".")[0] != "dediffusion":
                        continue
                    while t not in mods and "." in t:
                        t = t.rsplit(".", 1)[0]
                    if t != name and t != "dediffusion":
                        found.add(t)
        graph[name] = found
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    assert [m for m in modules() if m != "dediffusion" and layer(m) is None] == []


def test_imports_go_down_the_layers():
    up = [(a, b) for a, targets in edges().items() for b in targets
          if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    assert up == [], "library modules import runners (or a runner imports one above it)"


def test_no_import_cycle():
    graph, state, cycles = edges(), {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif not state.get(t):
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m, [m])
    assert cycles == []


def test_the_checks_see_a_cycle_and_an_upward_import():
    """The checks can fail: a function-level import from model/ into cli/ is an upward edge."""
    node = ast.parse("def f():\n    from ..cli.common import err\n").body[0].body[0]
    target = _targets(node, "dediffusion.model.encoder", False)[0]
    assert target == "dediffusion.cli.common.err" and layer("dediffusion.cli.common") > layer("dediffusion.model.encoder")


def test_no_file_name_twice():
    names: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}


def test_the_encode_path_goes_down():
    """``dediffusion encode`` -> the JSONL line: cli -> bulk -> data / model, never back up."""
    graph = edges()
    path = ["dediffusion.cli.main", "dediffusion.bulk.ranked", "dediffusion.bulk.stream", "dediffusion.data.inputs"]
    assert all(b in graph[a] for a, b in zip(path, path[1:]))
    assert [layer(m) for m in path] == sorted((layer(m) for m in path), reverse=True)
