"""The shape issue 23 asked for: codecs behind a thin Tokenizer, no import cycle.

Why tests: the shape is what keeps a new encoding to one codec file and one registry
entry; a later edit that dispatches on a kind name in the facade, or makes the decoder
module import the tokenizer back, fails here instead of slowly undoing it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import symato.text
from symato import Tokenizer
from symato.text.codecs import Codec, DecodeTables
from symato.text.kinds import KINDS

TEXT_DIR = Path(symato.text.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(TEXT_DIR.rglob("*.py")):
        rel = path.relative_to(TEXT_DIR.parent.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """The symato.text modules ``path`` imports anywhere (top level or in a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & known


def test_no_import_cycle_in_symato_text():
    modules = _modules()
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep] if dep in path else [m, dep]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    for m in modules:  # and every module imports on its own
        importlib.import_module(m)


def test_fastdecode_knows_nothing_of_the_tokenizer():
    source = (TEXT_DIR / "fastdecode.py").read_text(encoding="utf-8")
    assert "tokenizer" not in _imports(TEXT_DIR / "fastdecode.py", {"symato.text.tokenizer"})
    assert "tok._" not in source


def test_the_facade_never_branches_on_a_kind():
    tree = ast.parse((TEXT_DIR / "tokenizer.py").read_text(encoding="utf-8"))
    facade = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tokenizer")
    kind_words = {"symato", "bytes", "sentencepiece", "sp-", "bpe", "words"}
    for node in ast.walk(facade):
        if isinstance(node, ast.Compare):
            text = ast.unparse(node)
            assert "self.kind" not in text and "kind.name" not in text, text
            assert not any(w in text for w in kind_words), text
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("startswith"):
            pytest.fail(f"prefix test in the facade: {ast.unparse(node)}")
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("_sp", "_bpe", "_syms", "sp", "bpe"), ast.unparse(node)


def test_every_kind_names_a_codec_with_tables():
    for kind in KINDS.values():
        assert issubclass(kind.codec_class(), Codec), kind.name
    tok = Tokenizer.default()
    t = tok.decode_tables
    assert isinstance(t, DecodeTables) and t.size == tok.vocab_size == len(t.own) == len(t.arg)
    assert len(t.sym_forms) == 2275 and all(len(f) == 57 for f in t.sym_forms)
