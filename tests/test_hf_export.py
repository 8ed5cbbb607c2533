"""Models through Hugging Face ``transformers``: the one weight mapping both ways
(symato/interop/weights.py) and ``symato export --format hf`` (symato/interop/hf_export.py).

Checked on real ``transformers`` classes: the exported folder loads with
``AutoModelForCausalLM`` and gives symato's logits (≤ 1e-4 relative, fp32) and greedy
tokens; a model built by ``transformers`` itself imports into symato with the same logits
(issue #25's acceptance test); ``from_hf(to_hf(x)) == x`` for every mapped architecture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _train_fixtures import (
    make_settings,
    make_shards,
    restore_torch_globals,  # noqa: F401  (autouse fixture)
)

from symato.cli import main as cli_main
from symato.errors import SymatoError
from symato.interop.deps import require
from symato.interop.weights import MAPPINGS, from_hf, read_hf_folder, to_hf
from symato.models import build_model, config_dict, model_from_config
from symato.run.checkpoint import save_model
from symato.run.generate import generate_ids

# The test extra installs transformers: a missing one fails loudly, with the reason.
transformers = require("transformers")

VOCAB_FILE = Path(__file__).parent / "data" / "golden" / "bytes.json"  # 257 ids, eot 256
V, L, C, H, T = 257, 2, 48, 4, 32
IDS = [256, 120, 105, 110, 32, 99, 104, 195, 160, 111, 7, 256, 40, 41]
SHAPES = {"rwkv4": {"wkv_backend": "torch"}, "llama": {}, "gpt": {}}


def randomized(arch: str, seed: int = 0, **extra) -> torch.nn.Module:
    """A small symato model with every parameter random (zero-inited matrices too), so
    no tensor that a mapping misplaces can hide behind a zero or a one."""
    torch.manual_seed(seed)
    model = build_model(arch, vocab_size=V, n_layer=L, n_embd=C, n_head=H, ctx_len=T,
                        **{**SHAPES[arch], **extra})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference over the largest logit."""
    return float((a - b).abs().max() / a.abs().max())


def hf_greedy(hf_model, prompt: list[int], n: int, eot: int) -> list[int]:
    """``generate(do_sample=False)``'s new tokens, up to (not including) ``<|endoftext|>``."""
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False)
    new = out[0, len(prompt):].tolist()
    return new[: new.index(eot)] if eot in new else new


@pytest.mark.parametrize("arch,extra", [("rwkv4", {}), ("llama", {}), ("gpt", {}),
                                        ("gpt", {"tie_weights": True})],
                         ids=["rwkv4", "llama", "gpt", "gpt-tied"])
def test_to_hf_then_from_hf_gives_back_the_same_state(arch: str, extra: dict) -> None:
    model = randomized(arch, **extra)
    config, state = config_dict(model), model.state_dict()
    hf_state, hf_config = to_hf(arch, config, state)
    full = transformers.AutoConfig.for_model(**hf_config).to_dict()  # what a reader sees
    arch2, config2, state2 = from_hf(hf_state, full)
    assert arch2 == arch and set(state2) == set(state)
    for key in state:
        assert torch.equal(state2[key], state[key]), key
    assert all(config2[k] == config[k] for k in config2)
    rebuilt = model_from_config(arch, {**config, **config2})
    rebuilt.load_state_dict(state2, strict=True)


def test_every_mapping_is_tested() -> None:
    assert set(MAPPINGS) == set(SHAPES)


def _hf_model(arch: str) -> torch.nn.Module:
    """A random model built by transformers' own classes in a shape symato can hold."""
    torch.manual_seed(1)
    if arch == "rwkv4":
        cfg = transformers.RwkvConfig(vocab_size=V, hidden_size=C, num_hidden_layers=L,
                                      context_length=T)
        model = transformers.RwkvForCausalLM(cfg)
    elif arch == "llama":
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=C, num_hidden_layers=L,
                                       num_attention_heads=H, intermediate_size=128,
                                       rms_norm_eps=1e-5, max_position_embeddings=T)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=V, n_embd=C, n_layer=L, n_head=H,
                                      n_positions=T, activation_function="gelu",
                                      bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not (arch == "gpt" and name.endswith("bias") and ".ln_" not in name):
                p.add_(0.3 * torch.randn_like(p))  # GPT-2's linear biases must stay zero
    return model.eval()


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_transformers_checkpoint_imports_with_the_same_logits(tmp_path: Path, arch: str) -> None:
    hf_model = _hf_model(arch)
    hf_model.save_pretrained(str(tmp_path))
    arch2, config, state = from_hf(*read_hf_folder(tmp_path), where=str(tmp_path))
    assert arch2 == arch
    ours = model_from_config(arch, {**config, **SHAPES[arch]})
    ours.load_state_dict(state, strict=True)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        assert rel_diff(ours.eval()(ids), hf_model(ids).logits) <= 1e-4


def test_nonzero_gpt2_bias_is_refused(tmp_path: Path) -> None:
    hf_model = _hf_model("gpt")
    with torch.no_grad():
        hf_model.transformer.h[1].mlp.c_fc.bias[3] = 0.5
    hf_model.save_pretrained(str(tmp_path))
    with pytest.raises(SymatoError, match=r"transformer\.h\.1\.mlp\.c_fc\.bias is not zero"):
        from_hf(*read_hf_folder(tmp_path), where=str(tmp_path))


def test_unrepresentable_config_names_the_key() -> None:
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=C, num_hidden_layers=L,
                                   num_attention_heads=H, num_key_value_heads=2,
                                   intermediate_size=128)
    with pytest.raises(SymatoError, match="'num_key_value_heads' is 2"):
        from_hf({}, cfg.to_dict())


def _checkpoint(tmp_path: Path, model: torch.nn.Module) -> Path:
    """A run folder holding ``model`` as a symato checkpoint with a real vocabulary."""
    vocab = json.loads(VOCAB_FILE.read_text(encoding="utf-8"))
    save_model(tmp_path / "run" / "model.pt", model, {"run": "tiny", "tokenizer": vocab})
    return tmp_path / "run"


@pytest.mark.parametrize("arch,extra", [("rwkv4", {}), ("llama", {}), ("gpt", {}),
                                        ("gpt", {"tie_weights": True})],
                         ids=["rwkv4", "llama", "gpt", "gpt-tied"])
def test_exported_folder_loads_in_transformers_with_our_logits(tmp_path: Path, arch: str,
                                                               extra: dict) -> None:
    model = randomized(arch, **extra)
    info = hf_export(_checkpoint(tmp_path, model), tmp_path / "hf")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(hf_model).__name__ == info["hf_class"] == MAPPINGS[arch].hf_class
    ids = torch.tensor([IDS])
    with torch.no_grad():
        ours, theirs = model(ids), hf_model(ids).logits
    diff = rel_diff(ours, theirs)
    print(f"{arch} {extra}: max relative logit difference {diff:.2e}")
    assert diff <= 1e-4 and ours.abs().max() > 1
    prompt = IDS[:6]
    symato_tokens = generate_ids(model, prompt, max_new_tokens=8, temperature=0.0, stop_id=256)
    assert len(symato_tokens) >= 4  # a comparison of more than an immediate end
    assert hf_greedy(hf_model, prompt, 8, eot=256) == symato_tokens
    gen = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 256


def hf_export(ckpt: Path, out: Path, **kw):
    """Model-only export (the tokenizer is tested with helper B's module)."""
    from symato.interop.hf_export import export_hf

    return export_hf(ckpt, out, tokenizer=False, **kw)


def test_trained_run_exports_with_its_card_and_replaces_an_earlier_export(
        tmp_path: Path) -> None:
    shards = make_shards(tmp_path / "results" / "shards" / "bytes", vocab_size=V)
    shutil.copy(VOCAB_FILE, tmp_path / "vocab.json")
    settings = make_settings(tmp_path, arch="llama", run="llama-L1-D16-T2k", steps=10,
                             eval_interval=5, shards_dir=str(shards))
    # the workflow's records of the corpus, as the cleaning stage and `symato demo` write them
    (tmp_path / "results" / "clean").mkdir()
    (tmp_path / "results" / "clean" / "report.json").write_text(
        json.dumps({"sources": {"demo": {}}}))
    demo = tmp_path / "resources" / "demo"
    demo.mkdir(parents=True)
    (demo / "manifest.json").write_text(json.dumps({"sources": [
        {"name": "manpages-vi", "version": "1.0", "license": "GPL-2+", "status": "used"},
        {"name": "gone-pkg", "version": "2", "license": "MIT", "status": "skipped"}]}))
    assert cli_main(["train", "--settings", str(settings), "--out", str(tmp_path / "run")]) == 0
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text("{}")  # an earlier export: replaced whole
    (out / "stale.txt").write_text("old")
    info = hf_export(tmp_path / "run", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "generation_config.json", "model.safetensors"]
    card = (out / "README.md").read_text(encoding="utf-8")
    for text in ("# llama-L1-D16-T2k", "`LlamaForCausalLM`", "validation bits per byte",
                 "- tokens: 1,280", "## Data licence", "## Provenance", "training precision: fp32",
                 '"lr": 0.01', "kind: `bytes`", f"{info['params']['total']:,} in all",
                 "report.json`): `demo`.", "- manpages-vi 1.0: GPL-2+"):
        assert text in card, text
    assert "gone-pkg" not in card and "AutoTokenizer" not in card  # no tokenizer exported
    # after `symato evaluate`, the card reports its held-out numbers instead
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(
        {"bits_per_byte": 2.5, "restoration_accuracy": 0.75, "restoration_syllables": 400}))
    hf_export(tmp_path / "run", out)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "- bits_per_byte: 2.5\n" in card and "- restoration_accuracy: 0.75\n" in card
    assert not list(tmp_path.glob(".hf.*"))  # no staging folder left behind
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    from symato.run.checkpoint import load_model

    model, _ = load_model(tmp_path / "run")
    with torch.no_grad():
        assert rel_diff(model(torch.tensor([IDS])), hf_model(torch.tensor([IDS])).logits) <= 1e-4


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    run = _checkpoint(tmp_path, randomized("gpt"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(SymatoError, match="is not an earlier export"):
        hf_export(run, tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_bf16_export_keeps_rwkv_decays_fp32(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    hf_export(_checkpoint(tmp_path, randomized("rwkv4")), tmp_path / "hf", dtype="bf16")
    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert state["rwkv.blocks.1.attention.time_decay"].dtype == torch.float32
    assert state["rwkv.blocks.1.attention.key.weight"].dtype == torch.bfloat16


def test_rwkv7_hf_export_points_to_the_rwkv_format(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = build_model("rwkv7", vocab_size=V, n_layer=1, n_embd=32, n_head=2, ctx_len=T,
                        wkv_backend="torch")
    run = _checkpoint(tmp_path, model)
    argv = ["export", "--format", "hf", "--ckpt", str(run), "--out", str(tmp_path / "hf")]
    assert cli_main(argv) == 1
    assert "--format rwkv" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()


def test_one_layer_rwkv4_is_refused_by_name(tmp_path: Path, capsys) -> None:
    """transformers' RwkvForCausalLM cannot be built with one layer: the export says so
    instead of writing a folder nothing loads (symato.interop.support)."""
    import transformers

    config = transformers.RwkvConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1)
    with pytest.raises(ZeroDivisionError):  # the upstream limit; when fixed, drop the rule
        transformers.RwkvForCausalLM(config)
    torch.manual_seed(0)
    model = build_model("rwkv4", vocab_size=V, n_layer=1, n_embd=32, ctx_len=T,
                        wkv_backend="torch")
    run = _checkpoint(tmp_path, model)
    argv = ["export", "--format", "hf", "--ckpt", str(run), "--out", str(tmp_path / "hf")]
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "one layer" in err and "--format rwkv" in err
    assert not (tmp_path / "hf").exists()


def test_cli_exports_with_the_tokenizer(tmp_path: Path) -> None:
    """The full folder, tokenizer included, through the command (needs helper B's
    symato.interop.hf_tokenizer; skipped while the placeholder is in place)."""
    run = _checkpoint(tmp_path, randomized("gpt"))
    argv = ["export", "--format", "hf", "--ckpt", str(run), "--out", str(tmp_path / "hf")]
    try:
        assert cli_main(argv) == 0
    except NotImplementedError:
        pytest.skip("symato.interop.hf_tokenizer is still the placeholder")
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"),
                                                     trust_remote_code=True)
    assert tok.model_max_length == T
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 256


def test_transformers_imports_with_the_checkout_root_on_the_path() -> None:
    """The checkout's kernels/ folder (no __init__.py) must not hide the PyPI package
    ``kernels`` that transformers imports, e.g. in a notebook started at the root."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import kernels, transformers; from transformers import LlamaForCausalLM; "
            "print(kernels.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not done.stdout.strip().startswith(str(root / "kernels"))
