"""Corpus sources read with Hugging Face ``datasets`` (``format: hf``, symato.data.hub).

The Hub is unreachable here, so the real loading code reads datasets written locally:
``save_to_disk`` folders (``load_from_disk``) and folders of Parquet / JSON-lines files
(``load_dataset`` by path, streaming), through ``symato corpus`` and, in the slow test,
through the workflow's rules. A Hub id goes as far as ``load_dataset`` can without a
network: it must be pinned, and offline it fails naming the dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, tiny_data_config

# Offline before datasets is first imported (it reads these once): no test may reach,
# or wait for, the Hub.
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
os.environ.update(OFFLINE)

datasets = pytest.importorskip("datasets")

from symato.data.corpus import main, read_args, read_hub, resolve_sources  # noqa: E402
from symato.data.hub import HubSource, folder_digest  # noqa: E402
from symato.errors import SymatoError  # noqa: E402

VI = "Hôm nay trời đẹp quá, chúng tôi đi chơi ở Hà Nội."
VI2 = "Việt Nam là một quốc gia nằm ở phía đông bán đảo Đông Dương."
PIN = "0123456789abcdef0123456789abcdef01234567"


def corpus(tmp_path: Path, dataset: Path | str, *options: str) -> tuple[dict, list[dict]]:
    """Run ``symato corpus --format hf`` via main(argv); return (report, raw rows)."""
    out, report = tmp_path / "raw", tmp_path / "read.json"
    argv = ["--source", "hub", "--format", "hf", "--dataset", str(dataset), "--shards", "2",
            "--out-dir", str(out), "--report", str(report), *options]
    assert main(argv) == 0
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return json.loads(report.read_text()), rows


def test_saved_dataset_is_read_with_counts_and_provenance(tmp_path: Path) -> None:
    texts = [f"{VI}\n\n{VI2}", None, "", "  \n ", VI2, "x" * 300]
    saved = tmp_path / "saved"
    ds = datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))})
    ds.save_to_disk(str(saved))
    report, rows = corpus(tmp_path, saved, "--max-paragraph-bytes", "200")
    tally = report["sources"]["hub"]
    assert sorted(tuple(r["paragraphs"]) for r in rows) == sorted([(VI2,), (VI, VI2)])
    assert sorted(r["doc_id"] for r in rows) == [f"hub:{saved}:train:0", f"hub:{saved}:train:4"]
    assert tally["seen"]["documents"] == 6 and tally["files"] == {"seen": 1}
    assert tally["dropped"]["empty"]["documents"] == 3
    assert tally["dropped"]["too_long"] == {"documents": 1, "paragraphs": 1, "bytes": 300}
    origin = report["provenance"]["hub"]
    assert origin["fingerprint"] == datasets.load_from_disk(str(saved))._fingerprint
    assert origin["sha256"] == folder_digest(saved) and len(origin["sha256"]) == 64
    assert (origin["split"], origin["revision"], origin["max_documents"]) == ("train", None, None)
    assert origin["datasets_version"] == datasets.__version__
    # The digest is of the contents: another dataset in the same folder changes it.
    datasets.Dataset.from_dict({"text": [VI]}).save_to_disk(str(tmp_path / "other"))
    assert folder_digest(tmp_path / "other") != origin["sha256"]


def test_document_cap_reads_only_the_first_records(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": [f"{VI} {i}" for i in range(50)]}).save_to_disk(str(saved))
    report, rows = corpus(tmp_path, saved, "--max-documents", "7")
    assert report["sources"]["hub"]["seen"]["documents"] == 7
    assert sorted(r["paragraphs"][0] for r in rows) == sorted(f"{VI} {i}" for i in range(7))
    assert report["provenance"]["hub"]["max_documents"] == 7


def test_dataset_dict_split_is_chosen_and_a_missing_one_named(tmp_path: Path) -> None:
    saved = tmp_path / "dict"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [VI]}),
        "validation": datasets.Dataset.from_dict({"text": [VI2]}),
    }).save_to_disk(str(saved))
    _, rows = corpus(tmp_path, saved, "--split", "validation")
    assert [r["paragraphs"] for r in rows] == [[VI2]]
    with pytest.raises(SymatoError, match=r"split 'test'.*splits: train, validation"):
        corpus(tmp_path, saved, "--split", "test")


def test_home_relative_folders_are_local(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    datasets.Dataset.from_dict({"text": [VI]}).save_to_disk(str(tmp_path / "saved"))
    _parquet_folder(tmp_path / "pq", train=pa.table({"text": [VI2]}))
    assert [r["paragraphs"] for r in corpus(tmp_path, "~/saved")[1]] == [[VI]]
    assert [r["paragraphs"] for r in corpus(tmp_path, "~/pq")[1]] == [[VI2]]
    with pytest.raises(SymatoError, match=r"--dataset: local dataset folder not found"):
        corpus(tmp_path, "~/missing")
    with pytest.raises(SymatoError, match=r"--unit: only --format text takes it"):
        corpus(tmp_path, "~/saved", "--unit", "line")


def _parquet_folder(root: Path, **splits: pa.Table) -> Path:
    (root / "data").mkdir(parents=True)
    for split, table in splits.items():
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet")
    return root


def test_parquet_folder_by_path_and_column_errors(tmp_path: Path) -> None:
    folder = _parquet_folder(tmp_path / "pq", train=pa.table({"content": [VI, None]}),
                             test=pa.table({"content": [VI2]}))
    report, rows = corpus(tmp_path, folder, "--text-field", "content", "--split", "test")
    assert [r["paragraphs"] for r in rows] == [[VI2]]
    assert report["provenance"]["hub"]["sha256"] == folder_digest(folder)
    assert "fingerprint" not in report["provenance"]["hub"]  # no save_to_disk state
    with pytest.raises(SymatoError, match=rf"dataset '{folder}', split 'train': no column "
                                          r"'text' \(columns: content\)"):
        corpus(tmp_path, folder)
    numbers = _parquet_folder(tmp_path / "num", train=pa.table({"text": [1, 2]}))
    with pytest.raises(SymatoError, match=r"column 'text' has type Value\('int64'\), not string"):
        corpus(tmp_path, numbers)


def test_mixed_json_records_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    folder = tmp_path / "js"
    folder.mkdir()
    lines = [{"text": VI}, {"text": 5}, {"text": ["a list"]}, {"text": None}, {"other": 1}]
    (folder / "a.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    report, rows = corpus(tmp_path, folder)
    dropped = report["sources"]["hub"]["dropped"]
    assert [r["paragraphs"] for r in rows] == [[VI]]
    assert dropped["not_string"]["documents"] == 2
    assert dropped["empty"]["documents"] == 2  # null, and absent (arrow fills null)
    assert report["sources"]["hub"]["seen"]["documents"] == 5


def test_records_without_the_text_field_are_counted(tmp_path: Path) -> None:
    """A stream that declares no columns yields records as they are: one without the
    field is a document dropped as no_text_field (symato.data.hub.records)."""
    records = [{"text": VI}, {"body": VI2}, {"text": 3.5}]
    stream = datasets.IterableDataset.from_generator(lambda: iter(records))
    src = HubSource("somewhere/undeclared", revision=PIN)
    docs = list(read_hub(src, stream, "s", cap=1000))
    assert [(d.paragraphs, d.reason) for d in docs] == [
        ([VI], ""), ([], "no_text_field"), ([], "not_string")]
    assert docs[1].doc_id == "s:somewhere/undeclared:train:1"


def test_corrupt_file_error_names_dataset_split_and_record(tmp_path: Path) -> None:
    folder = _parquet_folder(tmp_path / "pq", train=pa.table({"text": [VI, VI2, VI]}))
    (folder / "data" / "train-00001-of-00001.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(SymatoError, match=rf"dataset '{folder}', split 'train': cannot read "
                                          r"record 3: "):
        corpus(tmp_path, folder)
    assert not list((tmp_path / "raw").glob("*.parquet"))  # no partial shard survives


def test_hub_id_needs_a_pinned_commit(tmp_path: Path) -> None:
    name = ["--dataset", "wikimedia/wikipedia", "--config", "20231101.vi"]
    base = ["--source", "w", "--format", "hf", "--shards", "1", "--out-dir", str(tmp_path / "o"),
            "--report", str(tmp_path / "r.json"), *name]
    with pytest.raises(SymatoError, match=r"--revision: dataset 'wikimedia/wikipedia' is read "
                                          "from the Hugging Face Hub and needs a pinned"):
        main(base)
    with pytest.raises(SymatoError, match=r"--revision: 'main' is not a commit sha"):
        main([*base, "--revision", "main"])
    # Pinned, the real Hub path runs up to the network, which offline mode refuses.
    with pytest.raises(SymatoError, match=r"cannot open dataset 'wikimedia/wikipedia', config "
                                          r"'20231101.vi', split 'train'"):
        main([*base, "--revision", PIN])
    with pytest.raises(SymatoError, match=r"--config: only --format hf takes it"):
        main(["--source", "w", "--format", "text", "--shards", "1", "--out-dir", "o",
              "--report", "r", "--config", "x", "f.txt"])


def test_resolve_sources_checks_hf_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    datasets.Dataset.from_dict({"text": [VI]}).save_to_disk("local")
    hub_src = {"name": "w", "format": "hf", "dataset": "wikimedia/wikipedia",
               "config": "20231101.vi", "revision": PIN, "max_documents": 10}
    local_src = {"name": "l", "format": "hf", "dataset": "local", "split": "train"}
    w, loc = resolve_sources({"sources": [hub_src, local_src]}, "demo.jsonl")
    assert w["files"] == [] and loc["files"] == sorted(str(p) for p in Path("local").iterdir())
    assert read_args(w) == ["--source", "w", "--format", "hf", "--text-field", "text",
                            "--split", "train", "--dataset", "wikimedia/wikipedia", "--config",
                            "20231101.vi", "--revision", PIN, "--max-documents", "10"]
    cases = [
        ({**hub_src, "revision": None}, r"corpus\.sources\[0\]\.revision: .*pinned revision"),
        ({k: v for k, v in hub_src.items() if k != "revision"}, r"sources\[0\]\.revision"),
        ({**local_src, "dataset": "./nope"}, r"sources\[0\]\.dataset: local dataset folder "
                                             "not found"),
        ({**local_src, "paths": ["x"]}, r"sources\[0\]\.paths: the hf format takes a dataset"),
        ({"name": "l", "format": "hf"}, r"sources\[0\]\.dataset: the hf format needs"),
        ({**local_src, "max_documents": 0}, r"sources\[0\]\.max_documents: must be at least 1"),
        ({"name": "t", "format": "text", "paths": ["x"], "split": "train"},
         r"sources\[0\]\.split: only the hf format takes split"),
    ]
    for src, pattern in cases:
        src = {k: v for k, v in src.items() if v is not None}
        with pytest.raises(SymatoError, match=pattern):
            resolve_sources({"sources": [src]}, "demo.jsonl")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf_home"),
            "PYTHONPATH": str(REPO)}


def test_cli_without_datasets_names_the_extra(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": [VI]}).save_to_disk(str(saved))
    code = ("import sys; sys.modules['datasets'] = None; from symato.cli import main; "
            "sys.exit(main(sys.argv[1:]))")  # an import of datasets now fails
    proc = subprocess.run(
        [sys.executable, "-c", code, "corpus", "--source", "s", "--format", "hf", "--dataset",
         str(saved), "--shards", "1", "--out-dir", str(tmp_path / "o"), "--report",
         str(tmp_path / "r.json")], capture_output=True, text=True, env=_env(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'symato[hf]'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_workflow_reads_an_hf_source(tmp_path: Path) -> None:
    """The data rules up to the cleaning report, with the tiny corpus as a saved dataset
    (one record per paragraph) beside the same text as a Parquet folder."""
    paragraphs = CORPUS.read_text(encoding="utf-8").split("\n\n")
    datasets.Dataset.from_dict({"body": paragraphs}).save_to_disk(str(tmp_path / "hfdata"))
    _parquet_folder(tmp_path / "pqdata", train=pa.table({"text": paragraphs[::-1]}))
    config = tiny_data_config()
    config["corpus"]["sources"] = [
        {"name": "saved", "format": "hf", "dataset": "hfdata", "text_field": "body"},
        {"name": "pq", "format": "hf", "dataset": "pqdata", "max_documents": 5},
    ]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(cfg), "--cores", "2", "results/clean/report.json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "results" / "clean" / "report.json").read_text())
    saved, pq_src = report["sources"]["saved"], report["sources"]["pq"]
    assert saved["seen"]["documents"] == len(paragraphs) and pq_src["seen"]["documents"] == 5
    assert saved["kept"]["documents"] > 0
    assert saved["provenance"]["sha256"] == folder_digest(tmp_path / "hfdata")
    assert pq_src["provenance"]["max_documents"] == 5
    # A Hub id without a pinned revision stops Snakemake before any job, naming the key.
    config["corpus"]["sources"] = [{"name": "w", "format": "hf", "dataset": "HuggingFaceFW/x"}]
    cfg.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    proc = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=300,
                          env=_env(tmp_path))
    assert proc.returncode != 0
    assert "corpus.sources[0].revision" in proc.stdout + proc.stderr
