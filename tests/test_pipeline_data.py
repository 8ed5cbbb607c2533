"""The data half of the workflow, run for real by Snakemake on a small Vietnamese corpus.

One full `snakemake data` run in a temp folder (a `text` source made of tests/data/
pipeline_vi.txt, two shards, tokenizers symato and bytes), then the rerun behaviours
(checked with dry runs, whose job table says exactly what would run) and invalid configs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, prepared, reversed_keys, tiny_data_config

from symato import Tokenizer
from symato.data.loader import TokenDataset
from symato.io import read_json

BASE = tiny_data_config()

pytestmark = pytest.mark.slow


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _snakemake(workdir: Path, config: dict, *args: str, name: str = "config.yaml",
               sort_keys: bool = True) -> subprocess.CompletedProcess[str]:
    cfg = workdir / name
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=sort_keys),
                   encoding="utf-8")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(cfg), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)


def _dry_jobs(workdir: Path, config: dict, target: str = "data") -> dict[str, int]:
    """Jobs a run would execute, from the dry run's job table ({} = nothing to do)."""
    proc = _snakemake(workdir, config, "-n", target, name="dry.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _workdir(tmp: Path) -> Path:
    (tmp / "input").mkdir(parents=True)
    shutil.copy(CORPUS, tmp / "input" / "vi.txt")
    return tmp


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = _workdir(tmp_path_factory.mktemp("pipeline"))
    proc = _snakemake(work, BASE, "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


def _clean_texts(work: Path) -> dict[str, str]:
    texts = {}
    for path in sorted((work / "results/clean").glob("*/*.parquet")):
        table = pq.read_table(path, columns=["doc_id", "text"]).to_pydict()
        texts.update(zip(table["doc_id"], table["text"], strict=True))
    return texts


def test_full_run_outputs(built: Path) -> None:
    texts = _clean_texts(built)
    assert len(texts) > 30
    stats = built / "results/stats"
    for name in ("syllables.parquet", "syms.parquet", "coverage.csv", "coverage.png",
                 "summary.md"):
        assert (stats / name).stat().st_size > 0
    for name in ("symato", "bytes"):
        manifest = read_json(built / f"results/shards/{name}/manifest.json")
        splits = manifest["splits"]
        assert splits["train"]["documents"] + splits["val"]["documents"] == len(texts)
        assert splits["val"]["documents"] > 0
        assert splits["train"]["bytes"] + splits["val"]["bytes"] == sum(
            len(t.encode("utf-8")) for t in texts.values())
        tok = Tokenizer.from_file(built / f"results/vocab/{name}.json")
        assert manifest["vocab_size"] == tok.vocab_size
        ds = TokenDataset(built / f"results/shards/{name}", "train", ctx_len=32)
        stream = np.concatenate([w[:, 1:][m] for w, m in ds.sequential_batches(4)]).tolist()
        stream = [int(ds.window(0, 1)[0]), *stream]
        docs = tok.decode(stream).split("<|endoftext|>")
        assert docs[0] == "" and set(docs[1:]) <= set(texts.values())
    assert (read_json(built / "results/shards/bytes/manifest.json")["splits"]["train"]["tokens"]
            > read_json(built / "results/shards/symato/manifest.json")["splits"]["train"]["tokens"])
    assert (built / "results/logs/tokenize/symato/0000.log").exists()
    assert (built / "results/benchmarks/tokenize/bytes/0001.tsv").exists()


def test_second_run_does_nothing(built: Path) -> None:
    proc = _snakemake(built, BASE, "data")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_reordered_equal_config_reruns_nothing(built: Path) -> None:
    """Every section written out in full, each mapping's keys in reverse order: the
    params of every data job are the same, so nothing reruns (Snakemake compares params
    by their text, and a dict's text follows its key order)."""
    full = reversed_keys(prepared(BASE))
    proc = _snakemake(built, full, "-n", "data", name="dry.yaml", sort_keys=False)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, (
        proc.stdout[-2000:] + proc.stderr[-2000:])


def test_cleaning_threshold_reruns_everything_after(built: Path) -> None:
    jobs = _dry_jobs(built, _merge(BASE, {"clean": {"min_paragraph_chars": 40}}))
    assert "corpus_shard" not in jobs  # reading the sources is upstream of cleaning
    assert jobs["clean_filter"] == 2 and jobs["clean_write"] == 2 and jobs["clean_report"] == 1
    assert jobs["stats_shard"] == 2 and jobs["stats_merge"] == 1
    assert jobs["tokenize"] == 4 and jobs["shards_manifest"] == 2
    assert jobs["vocab"] == 1  # symato (from the statistics); bytes depends on no data


def test_val_fraction_reruns_from_the_split_on(built: Path) -> None:
    jobs = _dry_jobs(built, _merge(BASE, {"clean": {"val_fraction": 0.3}}))
    assert "corpus_shard" not in jobs
    assert jobs["clean_write"] == 2 and jobs["stats_shard"] == 2 and jobs["vocab"] == 1
    assert jobs["tokenize"] == 4 and jobs["shards_manifest"] == 2


def test_stats_setting_reruns_merge_and_what_reads_it(built: Path) -> None:
    jobs = _dry_jobs(built, _merge(BASE, {"stats": {"top_non_syllables": 7}}))
    # the symato vocabulary reads the merged tables; bytes and the shard counts do not
    assert jobs == {"stats_merge": 1, "vocab": 1, "tokenize": 2, "shards_manifest": 1,
                    "data": 1}


def test_later_stage_setting_reruns_no_data_stage(built: Path) -> None:
    later = _merge(BASE, {"train": {"settings": {"lr": 0.001}}, "eval": {"temperature": 0.5}})
    assert _dry_jobs(built, later) == {}


def test_adding_a_tokenizer_builds_only_it(built: Path) -> None:
    bigger = _merge(BASE, {"tokenizers": ["symato", "bytes", "symato+50"]})
    assert _dry_jobs(built, bigger) == {"vocab": 1, "tokenize": 2, "shards_manifest": 1,
                                        "data": 1}
    before = {p: p.stat().st_mtime_ns for p in (built / "results").rglob("*") if p.is_file()
              and "logs" not in p.parts and ".snakemake" not in p.parts}
    proc = _snakemake(built, bigger, "data")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    manifest = read_json(built / "results/shards/symato+50/manifest.json")
    assert manifest["vocab_size"] > read_json(built / "results/shards/symato/manifest.json")[
        "vocab_size"]


def test_symato_bpe_learns_from_the_cleaned_shards(built: Path) -> None:
    bigger = _merge(BASE, {"tokenizers": ["symato", "bytes", "symato+50", "symato-bpe2600"]})
    assert _dry_jobs(built, bigger) == {"vocab": 1, "tokenize": 2, "shards_manifest": 1,
                                        "data": 1}
    proc = _snakemake(built, bigger, "data")
    assert proc.returncode == 0, proc.stderr[-3000:]
    vocab = read_json(built / "results/vocab/symato-bpe2600.json")
    assert vocab["meta"]["text_files"] == 2 and vocab["meta"]["merges_learned"] > 0
    assert read_json(built / "results/shards/symato-bpe2600/manifest.json")["vocab_size"] == 2600


@pytest.mark.parametrize(("extra", "named"), [
    ({"clean": {"val_fractoin": 0.1}}, "val_fractoin"),
    ({"clean": {"val_fraction": "lots"}}, "val_fraction"),
    ({"stats": {"top_non_syllables": 0}}, "top_non_syllables"),
    ({"corpus": {"sources": [{"name": "vi", "format": "text", "paths": ["input/nope*.txt"]}]}},
     "input/nope*.txt"),
])
def test_invalid_config_fails_before_any_job(tmp_path: Path, extra: dict, named: str) -> None:
    work = _workdir(tmp_path)
    proc = _snakemake(work, _merge(BASE, extra), "data")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert named in out, out[-2000:]
    assert not (work / "results").exists()


def _unused_syllable(corpus: str, skip: set[str]) -> str:
    """A toned syllable whose sym occurs nowhere in ``corpus`` (nor in ``skip``)."""
    from symato.text.syllable import all_syllables, parse, strip_marks

    words = set(re.findall(r"\w+", strip_marks(corpus.lower())))
    for syl in all_syllables():
        sym = parse(syl).sym
        if parse(syl).tone and sym not in words and sym not in skip and len(sym) >= 3:
            return syl
    raise AssertionError("no unused syllable")


def test_validation_text_shapes_no_vocabulary_and_no_baseline(tmp_path: Path) -> None:
    """A syllable and a Latin word that occur only in validation documents are in no
    statistics, no vocabulary (symato+N, sentencepiece) and no restoration baseline;
    the same kind of marker in a train document is in all of them (the control)."""
    import pandas as pd

    from symato.data.clean import split_of
    from symato.run.evaluate import baseline_table
    from symato.text.syllable import parse

    corpus = CORPUS.read_text(encoding="utf-8")
    paragraphs = [p for p in corpus.split("\n\n") if p.strip()]
    val_syl = _unused_syllable(corpus, set())
    train_syl = _unused_syllable(corpus, {parse(val_syl).sym})
    marker = "{0} {0} {0} là một từ lạ, {0} ở đây, {0} {0} nữa nhé bạn ơi. " + " ".join(
        ["{1} là {0}"] * 25)
    fraction, path = 0.2, "input/vi.txt"
    split = [split_of(f"vi:{path}:{i}", fraction) for i in range(len(paragraphs) + 2)]
    val_at = split.index("val", 5)
    train_at = split.index("train", val_at + 1)
    paragraphs.insert(val_at, marker.format(val_syl, "Zqxwvy"))
    paragraphs.insert(train_at, marker.format(train_syl, "Kjhgfd"))
    work = tmp_path
    (work / "input").mkdir()
    (work / "input" / "vi.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    config = {**tiny_data_config(), "tokenizers": ["symato+40", "sentencepiece"],
              "vocab": {"sentencepiece_size": 600},
              "train": {"grids": [{"tokenizers": "all", "archs": ["rwkv4"], "sizes": ["L1-D8"],
                                   "tokens": [100]}]}}
    config["clean"] = {"val_fraction": fraction, "min_vietnamese_share": 0.3}
    proc = _snakemake(work, config, "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def texts(split_name: str) -> str:
        files = sorted((work / f"results/clean/{split_name}").glob("*.parquet"))
        return "\n".join(t for f in files for t in pq.read_table(f)["text"].to_pylist())

    assert "Zqxwvy" in texts("val") and "Zqxwvy" not in texts("train")  # the setup holds
    assert "Kjhgfd" in texts("train")
    stats = pd.read_parquet(work / "results/stats/syllables.parquet")
    assert val_syl not in set(stats["syllable"]) and train_syl in set(stats["syllable"])
    sym_plus = Tokenizer.from_file(work / "results/vocab/symato+40.json").to_dict()
    learned = sym_plus["syllables"][: sym_plus["meta"]["syllables_from_corpus"]]
    assert val_syl not in learned and train_syl in learned
    sp = Tokenizer.from_file(work / "results/vocab/sentencepiece.json")
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size)]
    def learned_from(word: str) -> bool:  # a piece of 3+ letters of the word
        return any(len(p.strip("▁ ")) >= 3 and p.strip("▁ ") in word for p in pieces)

    assert not learned_from("Zqxwvy") and learned_from("Kjhgfd")
    baseline = baseline_table(work / "results/stats/syllables.parquet")
    assert parse(val_syl).sym not in baseline and parse(train_syl).sym in baseline
