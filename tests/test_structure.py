"""The house's rules, checked on the source: the generic layers name no family, no import circles, the core
imports neither Lightning nor Hydra, and the families are found from their yaml files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sgtrain
from sgtrain.models.family import registered

ROOT = Path(sgtrain.__file__).parent
GENERIC = ["training", "latent", "metrics", "cli", "data", "io/loader.py", "io/portable.py",
           "io/safe_pickle.py", "io/nvlabs.py", "io/tensorflow.py", "io/export.py"]


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = f
    return out


def _generic_files() -> list[Path]:
    files: list[Path] = []
    for g in GENERIC:
        p = ROOT / g
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def _code_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Identifiers, attributes, imported names and string constants that are not docstrings or messages (f-string
    parts and strings with spaces are messages)."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    in_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            out.append((n.lineno, n.id))
        elif isinstance(n, ast.Attribute):
            out.append((n.lineno, n.attr))
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out += [(n.lineno, a.name) for a in n.names]
            out += [(n.lineno, n.module)] if getattr(n, "module", None) else []
        elif (isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
              and id(n) not in in_fstring and " " not in n.value and "://" not in n.value):
            out.append((n.lineno, n.value))
    return out


def test_generic_layers_name_no_family_and_no_family_key():
    families = set(registered())
    assert {"dcgan", "progan", "stylegan", "stylegan2", "stylegan3", "r3gan"} <= families
    families |= {f.display_name for f in registered().values()}  # 'StyleGAN2' in a list is a family name too
    # each family's own keys: what its yaml sets under loss / schedule and the mapping-layer names
    family_keys = {"pl_weight", "pl_batch_shrink", "pl_decay", "r1_gamma", "style_mixing_prob", "blur_init_sigma",
                   "lod_initial_resolution", "mapping_kwargs", "freeze_layers", "gamma_final", "WidthPerStage"}
    word = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(sorted(families, key=len, reverse=True)) + r")(?![A-Za-z0-9])")
    found = []
    for f in _generic_files():
        for line, name in _code_names(ast.parse(f.read_text())):
            if word.search(name) or name in family_keys or "mapping.fc" in name:
                found.append(f"{f.relative_to(ROOT)}:{line}: {name}")
    assert not found, "\n".join(found)


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, f in mods.items():
        pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
        for n in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (n.level - 1)]
                    base = ".".join(up + ([n.module] if n.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in n.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("sgtrain") and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def test_no_import_circles():
    """No two sgtrain modules import each other, directly or through others (function-level imports included; a
    module importing its own parent package is not counted)."""
    graph = _edges()
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_core_imports_neither_lightning_nor_hydra():
    for f in sorted((ROOT / "core").rglob("*.py")):
        tree = ast.parse(f.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        bad = [m for m in names if m.split(".")[0] in ("lightning", "pytorch_lightning", "hydra")
               or m.startswith("sgtrain.training")]
        assert not bad, f"{f}: {bad}"
    assert not (ROOT / "losses.py").exists() and not (ROOT / "augment.py").exists()


def test_every_family_is_one_folder_with_its_descriptor():
    for name, fam in registered().items():
        folder = ROOT.parent / Path(*fam.package.split("."))
        assert (folder / "__init__.py").exists() and (folder / "networks.py").exists(), name
        assert fam.package == f"sgtrain.models.{name}"


def test_rooms_import_downwards():
    """models never import training; latent and io never import training; core never imports the families."""
    graph = _edges()
    rules = {"sgtrain.models": ("sgtrain.training", "sgtrain.latent", "sgtrain.metrics", "sgtrain.cli"),
             "sgtrain.latent": ("sgtrain.training", "sgtrain.cli"), "sgtrain.io": ("sgtrain.training", "sgtrain.cli"),
             "sgtrain.core": ("sgtrain.training", "sgtrain.models", "sgtrain.cli"),
             "sgtrain.metrics": ("sgtrain.training", "sgtrain.latent", "sgtrain.cli")}
    bad = [f"{m} -> {t}" for m, ts in graph.items() for t in ts for room, banned in rules.items()
           if (m == room or m.startswith(room + ".")) and any(t == b or t.startswith(b + ".") for b in banned)]
    assert not bad, "\n".join(bad)
