"""What the workflow tests share: where the repository and Snakemake are, the tiny
real-Vietnamese text corpus (two shards, two tokenizers) their configs start from, and
the workflow's scripts (workflow/scripts/) imported as modules."""

from __future__ import annotations

import copy
import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CORPUS = REPO / "tests" / "data" / "pipeline_vi.txt"
_TINY_DATA: dict[str, Any] = {
    "corpus": {"sources": [{"name": "vi", "format": "text", "paths": ["input/*.txt"]}],
               "shards": 2},
    "tokenizers": ["symato", "bytes"],
    "clean": {"val_fraction": 0.2},
    # One small grid over whatever tokenizers a test configures: config.yaml's demo grids
    # name tokenizers (symato+256, the sweep's) that the tiny configs leave out.
    # The corpus's train split is ~5.7 kB (~2k symato tokens, fewer for larger
    # vocabularies): the runs may pass over it more than once (max_epochs, issue #21).
    "train": {"grids": [{"name": "tiny", "tokenizers": "all", "archs": ["rwkv4"],
                         "sizes": ["L1-D32"], "tokens": [2000]}],
              "settings": {"max_epochs": 10.0}},
}


def prepared(config: dict[str, Any]) -> dict[str, Any]:
    """A complete copy of ``config``: checked and filled as the Snakefile does it."""
    from symato.config import prepare

    return prepare(copy.deepcopy(config), REPO / "workflow" / "schemas" / "config.schema.yaml")


def tiny_data_config(**sections: Any) -> dict[str, Any]:
    """A fresh copy of the tiny data config, with extra top-level sections added.

    The inference benchmark (report.context_bench, rules/bench.smk) is off unless a
    test's ``report`` section turns it on: config.yaml, which Snakemake merges under
    every test config, turns it on for the demo, and a test of other rules should not
    pay its half minute."""
    config = {**copy.deepcopy(_TINY_DATA), **copy.deepcopy(sections)}
    report = config.setdefault("report", {})
    report["context_bench"] = {"enabled": False, **report.get("context_bench", {})}
    return config


def reversed_keys(value: Any) -> Any:
    """``value`` with the key order of every mapping in it reversed (lists kept as they
    are): the same config as a YAML tool that reorders keys would write it."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def load_script(name: str) -> ModuleType:
    """workflow/scripts/NAME.py as a module, to call its draw()/document() without Snakemake.

    Its Snakemake block does not run: the module has no ``snakemake`` global.
    """
    path = REPO / "workflow" / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"workflow_scripts_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A CSV table with the first row's keys as header (runs.csv, tokenizers.csv stand-ins)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
