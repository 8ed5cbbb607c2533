"""The config path: one schema, completed from the package's registries and contracts,
checked and filled once (symato.config.prepare), errors that name the key."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from _workflow import REPO, SNAKEMAKE, prepared

from symato.config import load_schema
from symato.errors import SymatoError
from symato.models.registry import ALIASES, ARCHITECTURES
from symato.run.settings import SETTINGS, shared_names
from symato.text.kinds import KINDS
from symato.text.vocab import SP_OPTIONS

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
EXAMPLES = {"symato": "symato", "symato+N": "symato+8192", "symato-bpeV": "symato-bpe2816",
            "symato-wordsV": "symato-words4096",
            "bytes": "bytes", "sp-bpeV": "sp-bpe2816", "sp-unigramV": "sp-unigram11008",
            "sentencepiece": "sentencepiece"}


def demo() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


def _walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_bundled_schema_is_self_contained() -> None:
    schema = load_schema(SCHEMA)
    keys = {k for node in _walk(schema) if isinstance(node, dict) for k in node}
    assert "$ref" not in keys and "x-symato-registry" not in keys


def test_schema_enums_equal_the_registries() -> None:
    train = load_schema(SCHEMA)["properties"]["train"]["properties"]
    archs = train["grids"]["items"]["properties"]["archs"]["items"]["enum"]
    assert archs == [*ARCHITECTURES, *ALIASES]  # old names: read as today's by prepare
    overrides = train["arch_overrides"]
    assert overrides["propertyNames"]["enum"] == [*ARCHITECTURES, *ALIASES]
    pattern = load_schema(SCHEMA)["properties"]["tokenizers"]["items"]["pattern"]
    assert set(EXAMPLES) == set(KINDS), "add an example name for the new kind"
    for name in EXAMPLES.values():
        assert re.fullmatch(pattern, name), name
    for name in ("wordpiece", "symato+0", "symato+", "Symato", "bytes2", "symato-bpe"):
        assert not re.fullmatch(pattern, name), name
    # no hand-written list of them is left in the schema files
    text = "".join(p.read_text() for p in SCHEMA.parent.glob("*.yaml"))
    assert not re.search(r"enum: \[rwkv", text) and "sentencepiece)$" not in text


def test_train_settings_schema_is_the_run_settings_contract() -> None:
    train = load_schema(SCHEMA)["properties"]["train"]["properties"]
    props = train["settings"]["properties"]
    assert list(props) == list(shared_names())
    types = {int: "integer", float: "number", str: "string", bool: "boolean"}
    for s in (s for s in SETTINGS if s.shared):
        p = props[s.name]
        assert p["default"] == s.default, s.name
        if s.from_recipe:  # a value, or "recipe" / null: the architecture's recipe value
            assert s.default == "recipe" and p["anyOf"][1] == {"enum": ["recipe", None]}
            p = p["anyOf"][0]
        assert p.get("enum", []) == list(s.choices), s.name
        if not s.choices:
            assert p["type"] == types[s.kind], s.name
        assert p.get("minimum") == s.minimum and p.get("exclusiveMinimum") == s.above, s.name
    assert train["arch_overrides"]["additionalProperties"]["properties"] == props
    sp = load_schema(SCHEMA)["properties"]["vocab"]["properties"]["sentencepiece"]["properties"]
    assert {k: v["default"] for k, v in sp.items()} == {o.name: o.default for o in SP_OPTIONS}


def test_prepare_fills_every_default_through_references() -> None:
    config = prepared({"tokenizers": ["symato"]})
    assert config["train"]["settings"] == {s.name: s.default for s in SETTINGS if s.shared}
    assert config["vocab"]["sentencepiece"] == {o.name: o.default for o in SP_OPTIONS}
    assert config["clean"]["tone_style"] == "new" and config["eval"]["batch_size"] == 16
    assert config["corpus"]["sources"][0]["text_field"] == "text"  # inside an array item
    # given values win; an override is not filled up with defaults
    config = prepared({**demo(), "train": {**demo()["train"]}})
    assert config["train"]["arch_overrides"] == {"gpt": {"lr": 0.006, "lr_min": 0.0006},
                                                 "llama": {"lr": 0.006, "lr_min": 0.0006}}
    assert config["train"]["settings"]["lr"] == 0.004


def test_the_old_name_rwkv_is_read_as_rwkv4_with_a_notice(capsys) -> None:
    """A config written before RWKV-4 was named rwkv4 still runs: ``rwkv`` in a grid's
    archs and in arch_overrides is read as ``rwkv4``, its runs are named rwkv4-..., and
    one line on stderr per old name says where it was read."""
    from symato.run.grid import expand_grid

    config = copy.deepcopy(demo())
    config["train"]["grids"][2]["archs"] = ["rwkv", "gpt", "rwkv4"]
    config["train"]["arch_overrides"] = {"rwkv": {"lr": 0.002}}
    config = prepared(config)
    assert config["train"]["grids"][2]["archs"] == ["rwkv4", "gpt", "rwkv4"]
    assert config["train"]["arch_overrides"] == {"rwkv4": {"lr": 0.002}}
    notices = [line for line in capsys.readouterr().err.splitlines() if "old name" in line]
    assert notices == ["symato: config: train.grids[2].archs[0], train.arch_overrides.rwkv: "
                       "'rwkv' is the old name of architecture 'rwkv4', read as 'rwkv4' (its "
                       "runs are named rwkv4-...; docs/models.md)"]
    runs = [r for r in expand_grid(config) if r["arch"] == "rwkv4"]
    assert runs and all(r["run"].startswith("rwkv4-L") for r in runs)
    assert {r["settings"]["lr"] for r in runs if "-lr" not in r["run"]} == {0.002}
    twice = copy.deepcopy(demo())
    twice["train"]["arch_overrides"] = {"rwkv": {"lr": 0.002}, "rwkv4": {"lr": 0.003}}
    with pytest.raises(SymatoError, match="'rwkv' and 'rwkv4' name one architecture"):
        prepared(twice)


@pytest.mark.parametrize(("path", "value", "named"), [
    (("train", "grids", 0, "archs"), ["rwkv4", "mamba"], r"train\.grids\[0\]\.archs\[1\]: 'mamba'"),
    (("train", "settings", "lr"), "fast", r"train\.settings\.lr: 'fast' is not of type"),
    # an integral float is not an int: named at its key, not later at a run name
    (("train", "settings", "ctx_len"), 128.0,
     r"train\.settings\.ctx_len: 128\.0 is not of type 'integer'"),
    (("train", "grids", 0, "bytes"), [1.0e5], r"train\.grids\[0\]\.bytes\[0\]: 100000\.0"),
    (("train", "settings", "n_embed"), 3, r"train\.settings: Additional properties.*n_embed"),
    (("train", "arch_overrides", "mamba"), {}, r"train\.arch_overrides: 'mamba' is not one"),
    (("train", "arch_overrides", "gpt", "lr"), -1, r"train\.arch_overrides\.gpt\.lr: -1"),
    (("tokenizers",), ["symato", "wordpiece"], r"tokenizers\[1\]: 'wordpiece' does not match"),
    (("vocab", "sentencepiece", "model_type"), "wordpiece",
     r"vocab\.sentencepiece\.model_type: 'wordpiece' is not one of \['bpe', 'unigram'\]"),
])
def test_invalid_values_are_refused_naming_the_key(path, value, named) -> None:
    config = copy.deepcopy(demo())
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    with pytest.raises(SymatoError, match=named):
        prepared(config)


def test_registry_settings_check_widths() -> None:
    from symato.run.grid import expand_grid

    config = demo()
    config["train"]["grids"][0].update(sizes=["L2-D63"], archs=["gpt"])
    with pytest.raises(SymatoError, match=r"train\.grids\[0\]: run gpt-L2-D63-B10k: gpt width"):
        expand_grid(prepared(config))


def test_parsing_the_workflow_does_not_import_torch() -> None:
    """The Snakefile and `symato settings` (one job per run) read the registries, the
    grid and the settings contract; importing torch there costs ~2 s per process."""
    code = ("import sys, symato.config, symato.run.grid, symato.run.settings, symato.models, "
            "symato.text.kinds; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------- nested --config overrides
def _dry_run(work, *config: str, targets: tuple[str, ...] = ()) -> str:
    """`snakemake -n -p` of the real Snakefile with the demo config, a config file of
    other keys of the same sections, and ``--config`` values; returns its output."""
    extra = work / "extra.yaml"
    extra.write_text("report: {seed: 7}\neval: {window_stride: 0.25}\n"
                     "clean: {min_paragraph_chars: 3}\n")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work), "-n", "-p",
           "--configfile", str(extra), "--config", *config, "--", *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    return f"rc={proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(("override", "target", "expected"), [
    ("report={bootstrap: 10}", "results/scaling/fits.json", "--bootstrap 10 --seed 7 "),
    ("eval={batch_size: 8}", "results/runs/symato/rwkv4-L1-D32-B10k/metrics.json",
     "--batch-size 8 --window-stride 0.25 "),
    ("clean={dedup: false}", "results/clean/report.json", "clean dedup --disable "),
    ("clean={dedup: true}", "results/clean/report.json", " --val-fraction 0.025 "),
])
def test_nested_config_overrides_are_typed_and_merged(tmp_path, override, target,
                                                      expected) -> None:
    """Snakemake reads `--config report={bootstrap: 10}` as {'bootstrap': '10'} and merges
    it into the section; the value must count as YAML's 10, and the section's other keys
    (from the config files) must stay."""
    out = _dry_run(tmp_path, override, targets=(target,))
    assert out.startswith("rc=0"), out[-3000:]
    assert expected in out
    if target.startswith("results/clean"):
        assert "--min-paragraph-chars 3 " in out
        assert ("--disable" in out) == ("false" in override)


def test_nested_config_keeps_schema_strings_and_names_a_wrong_value(tmp_path) -> None:
    from symato.config import type_overrides

    schema = load_schema(SCHEMA)
    given = {"tokenizers": ["symato"], "train": {"grids": [{"name": "123", "tokens": ["10"],
                                                            "tokenizers": "all"}]}}
    config = copy.deepcopy(given)
    type_overrides(config, given, schema)
    assert config["train"]["grids"][0] == {"name": "123", "tokens": [10], "tokenizers": "all"}
    out = _dry_run(tmp_path, "report={bootstrap: ten}", "eval={batch_size: 0}")
    assert not out.startswith("rc=0")
    assert "report.bootstrap: 'ten' is not of type 'integer'" in out
    assert "eval.batch_size: 0 is less than the minimum of 1" in out
