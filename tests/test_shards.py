"""`symato tokenize` and `symato tokenize manifest` with the real default tokenizer."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symato import Tokenizer
from symato.cli import main as cli
from symato.data.clean import split_of
from symato.data.loader import TokenDataset
from symato.data.tokenize import vocab_record, write_manifest, write_token_shard
from symato.errors import SymatoError
from symato.text.syllable import LETTER_RUN, letter_runs

TEXTS = [
    "Hà Nội là thủ đô của Việt Nam.",
    "Sông Hồng chảy qua nhiều tỉnh phía bắc, dài hơn 500 km.",
    "Tiếng Việt có sáu thanh điệu.",
    "Phở bò là món ăn quen thuộc vào buổi sáng.",
] * 10


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "symato.json"
    Tokenizer.default().save(path)
    return path


def _clean(path: Path, texts: list[str], first: int = 0) -> Path:
    ids = [f"src:{i:05d}" for i in range(first, first + len(texts))]
    pq.write_table(pa.table({"doc_id": ids, "source": ["src"] * len(texts), "text": texts}), path)
    return path


def _split_files(root: Path, texts: list[str], first: int, fraction: float) -> list[str]:
    """A cleaned shard as its two split files (split as `symato clean write` does it)."""
    ids = [f"src:{i:05d}" for i in range(first, first + len(texts))]
    args = []
    for split in ("train", "val"):
        mine = [(d, t) for d, t in zip(ids, texts, strict=True) if split_of(d, fraction) == split]
        path = root / f"{split}.parquet"
        root.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"doc_id": [d for d, _ in mine], "source": ["src"] * len(mine),
                                 "text": [t for _, t in mine]}), path)
        args += [f"--clean-{split}", str(path)]
    return args


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_file(src).read_all()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aáàbc1²½Ⅻ_ -\u0301\u0323ĐđỆ🙂٣x'ǅ\u2160"), max_size=20)
       | st.text(max_size=20))
def test_letter_runs_fast_path_equals_reference_class(text: str) -> None:
    assert list(letter_runs(text)) == [m.span() for m in LETTER_RUN.finditer(text)]


def test_split_is_stable_hash() -> None:
    ids = [f"doc-{i}" for i in range(4000)]
    vals = [d for d in ids if split_of(d, 0.1) == "val"]
    assert 300 < len(vals) < 500
    assert vals == [d for d in ids if split_of(d, 0.1) == "val"]
    assert all(split_of(d, 0.0) == "train" for d in ids[:100])
    # a larger fraction keeps every earlier val document in val
    assert set(vals) <= {d for d in ids if split_of(d, 0.2) == "val"}


def test_tokenize_and_manifest(tmp_path: Path, vocab: Path) -> None:
    tok = Tokenizer.from_file(vocab)
    out = tmp_path / "shards" / "symato"
    for k, texts in enumerate((TEXTS[:25], TEXTS[25:])):
        clean = _split_files(tmp_path / f"clean{k}", texts, 25 * k, 0.2)
        assert cli(["tokenize", "--vocab", str(vocab), *clean,
                    "--train", str(out / "train" / f"{k}.arrow"),
                    "--val", str(out / "val" / f"{k}.arrow")]) == 0
    files = sorted(out.glob("*/*.arrow"))
    assert cli(["tokenize", "manifest", *map(str, files), "--dir", str(out),
                "--tokenizer", "symato"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vocab_size"] == tok.vocab_size and manifest["dtype"] == "uint16"
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    assert train["documents"] + val["documents"] == len(TEXTS) and val["documents"] > 0
    assert train["bytes"] + val["bytes"] == sum(len(t.encode()) for t in TEXTS)
    # syllables: "km" is no syllable, "500" no letter run; the rest are syllables
    words = sum(len(t.split()) for t in TEXTS)
    assert train["syllables"] + val["syllables"] == words - 20
    decoded = {}
    for path in files:
        table = _read(path)
        assert table.schema.field("tokens").type == pa.list_(pa.uint16())
        for doc_id, ids in zip(table["doc_id"].to_pylist(), table["tokens"].to_pylist(),
                               strict=True):
            assert ids[0] == tok.eot_id and tok.eot_id not in ids[1:]
            assert split_of(doc_id, 0.2) == path.parent.name
            decoded[doc_id] = tok.decode(ids[1:])
    assert decoded == {f"src:{i:05d}": t for i, t in enumerate(TEXTS)}
    ds = TokenDataset(out, "train", ctx_len=8)
    assert ds.num_tokens == train["tokens"] == sum(
        len(r) for p in files if p.parent.name == "train" for r in _read(p)["tokens"].to_pylist())
    assert ds.random_batch(2, np.random.default_rng(0)).max() < tok.vocab_size


def test_tokenize_errors(tmp_path: Path, vocab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "noid.parquet")
    args = ["--vocab", str(vocab), "--train", str(tmp_path / "t.arrow"),
            "--val", str(tmp_path / "v.arrow")]
    ok = _clean(tmp_path / "ok.parquet", ["Xin chào"])
    assert cli(["tokenize", "--clean-train", str(tmp_path / "noid.parquet"), "--clean-val",
                str(ok), *args]) == 1
    assert "noid.parquet lacks column(s) ['doc_id']" in capsys.readouterr().err
    assert cli(["tokenize", "--clean-train", str(ok), "--clean-val",
                str(tmp_path / "none.parquet"), *args]) == 1
    assert "cleaned shard not found" in capsys.readouterr().err
    assert not (tmp_path / "t.arrow").exists()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "junk.arrow").write_bytes(b"not arrow")
    assert cli(["tokenize", "manifest", str(tmp_path / "train" / "junk.arrow"),
                "--dir", str(tmp_path), "--tokenizer", "x"]) == 1
    assert "cannot read token shard" in capsys.readouterr().err


def test_empty_shard(tmp_path: Path, vocab: Path) -> None:
    clean = _clean(tmp_path / "e.parquet", [])
    out = tmp_path / "t"
    assert cli(["tokenize", "--vocab", str(vocab), "--clean-train", str(clean), "--clean-val",
                str(clean), "--train",
                str(out / "train" / "0.arrow"), "--val", str(out / "val" / "0.arrow")]) == 0
    assert _read(out / "train" / "0.arrow").num_rows == 0
    assert cli(["tokenize", "manifest", str(out / "train" / "0.arrow"),
                str(out / "val" / "0.arrow"), "--dir", str(out), "--tokenizer", "symato"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"] == {"bytes": 0, "documents": 0, "shards": ["train/0.arrow"],
                                           "syllables": 0, "tokens": 0}


def _doc_snippets(heading: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block under a docs/data.md heading."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def test_shards_record_their_vocabulary_and_docs_read_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vocabulary's path and sha256 in each shard and the manifest; the docs' three
    ways of reading shards (pyarrow, datasets, symato decode) run as written."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    vocab = Path("results/vocab/symato.json")
    vocab.parent.mkdir(parents=True)
    Tokenizer.default().save(vocab)
    out = Path("results/shards/symato")
    for k, texts in enumerate((TEXTS[:25], TEXTS[25:])):
        clean = _split_files(tmp_path / f"clean{k}", texts, 25 * k, 0.2)
        assert cli(["tokenize", "--vocab", str(vocab), *clean,
                    "--train", str(out / "train" / f"{k:04d}.arrow"),
                    "--val", str(out / "val" / f"{k:04d}.arrow")]) == 0
    files = sorted(out.glob("*/*.arrow"))
    assert cli(["tokenize", "manifest", *map(str, files), "--dir", str(out),
                "--tokenizer", "symato"]) == 0
    record = {"path": "results/vocab/symato.json",
              "sha256": hashlib.sha256(vocab.read_bytes()).hexdigest()}
    for path in files:
        assert json.loads(_read(path).schema.metadata[b"symato"])["vocab"] == record
    assert json.loads((out / "manifest.json").read_text())["vocab"] == record

    snippets = _doc_snippets("Reading token shards")
    assert [lang for lang, _ in snippets] == ["python", "python", "sh"]
    expected = {f"src:{i:05d}": t for i, t in enumerate(TEXTS)}
    val0 = {d: expected[d] for d in _read(out / "val" / "0000.arrow")["doc_id"].to_pylist()}
    scope: dict = {}
    exec(snippets[0][1], scope)  # pyarrow
    assert scope["texts"] == val0
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    scope = {}
    exec(snippets[1][1], scope)  # datasets
    assert scope["ds"]["train"].num_rows + scope["ds"]["validation"].num_rows == len(TEXTS)
    assert scope["first"] == next(iter(val0.values()))
    bin_dir = tmp_path / "bin"  # `symato` as an installed package provides it
    bin_dir.mkdir()
    (bin_dir / "symato").write_text(f'#!/bin/sh\nexec {sys.executable} -m symato "$@"\n')
    (bin_dir / "symato").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(["sh", "-c", snippets[2][1]], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == next(iter(val0.values()))


def test_manifest_refuses_shards_of_different_vocabularies(tmp_path: Path, vocab: Path) -> None:
    other = tmp_path / "other.json"
    other.write_bytes(vocab.read_bytes() + b"\n")  # same ids, another file
    for split, voc in (("train", vocab), ("val", other)):
        write_token_shard(tmp_path / split / "0.arrow", ["d"], [[0, 1]], 300,
                          vocab=vocab_record(voc))
    with pytest.raises(SymatoError, match="made with different vocabularies"):
        write_manifest(tmp_path, sorted(tmp_path.glob("*/0.arrow")), "x")
