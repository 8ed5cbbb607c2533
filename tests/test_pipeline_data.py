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
from _workflow import CORPUS, REPO, SNAKEMAKE, tiny_data_config

from symato import Tokenizer
from symato.data import TokenDataset
from symato.io import read_json

BASE = tiny_data_config()

pytestmark = pytest.mark.slow


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _snakemake(workdir: Path, config: dict, *args: str,
               name: str = "config.yaml") -> subprocess.CompletedProcess[str]:
    cfg = workdir / name
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
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
    for path in sorted((work / "results/clean/shards").glob("*.parquet")):
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


def test_cleaning_threshold_reruns_everything_after(built: Path) -> None:
    jobs = _dry_jobs(built, _merge(BASE, {"clean": {"min_paragraph_chars": 40}}))
    assert "corpus_shard" not in jobs  # reading the sources is upstream of cleaning
    assert jobs["clean_filter"] == 2 and jobs["clean_write"] == 2 and jobs["clean_report"] == 1
    assert jobs["stats_shard"] == 2 and jobs["stats_merge"] == 1
    assert jobs["tokenize"] == 4 and jobs["shards_manifest"] == 2
    assert jobs["vocab"] == 1  # symato (from the statistics); bytes depends on no data


def test_tokenize_setting_reruns_only_tokenize(built: Path) -> None:
    jobs = _dry_jobs(built, _merge(BASE, {"tokenize": {"val_fraction": 0.3}}))
    assert jobs == {"tokenize": 4, "shards_manifest": 2, "data": 1}


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
    ({"tokenize": {"val_fractoin": 0.1}}, "val_fractoin"),
    ({"tokenize": {"val_fraction": "lots"}}, "val_fraction"),
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
