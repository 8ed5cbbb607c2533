"""A run that starts from an existing model (setting ``init_from``): the import of each
source kind (the inverse of its export), the trainer's start, the transplant onto the
run's tokenizer, frozen layers, and the errors of sources that do not fit."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from _train_fixtures import (  # noqa: F401 (restore_torch_globals: a fixture)
    make_settings,
    make_shards,
    read_metrics,
    restore_torch_globals,
)

from symato.errors import SymatoError
from symato.interop import imports
from symato.interop.rwkv_pth import RWKV7_LAYER0_UNUSED, rwkv_state_dict
from symato.models import build_model, model_from_config
from symato.run.checkpoint import load_model
from symato.run.provenance import run_inputs
from symato.run.settings import check_settings, load_settings, ordered
from symato.run.train import Trainer
from symato.run.train import main as train_main

V, IDS = 41, [[5, 0, 17, 40, 3, 3, 22, 9]]


def random_rwkv(arch: str, vocab: int = V, n_embd: int = 32) -> torch.nn.Module:
    """A small RWKV with every parameter random (zero-initialized ones included)."""
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=vocab, n_layer=2, n_embd=n_embd, n_head=n_embd // 8,
                        ctx_len=16, wkv_backend="torch")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


# ---------------------------------------------------------------------- RWKV .pth import
@pytest.mark.parametrize("arch", ["rwkv4", "rwkv7"])
def test_rwkv_export_then_import_gives_the_same_tensors_and_logits(tmp_path: Path,
                                                                  arch: str) -> None:
    model = random_rwkv(arch)
    path = tmp_path / "m.pth"
    torch.save(rwkv_state_dict(model), path)
    src = imports.load(f"rwkv-pth:{path}", ctx_len=16)
    assert (src.arch, src.kind) == (arch, "rwkv-pth")
    assert src.config["n_layer"] == 2 and src.config["vocab_size"] == V
    for name, tensor in model.state_dict().items():
        assert torch.equal(src.state[name], tensor), name
    again = model_from_config(arch, {**src.config, "wkv_backend": "torch"})
    again.load_state_dict(src.state, strict=True)
    ids = torch.tensor(IDS)
    with torch.no_grad():
        assert (again.eval()(ids) - model(ids)).abs().max() <= 1e-5


def test_released_rwkv7_layout_loads(tmp_path: Path) -> None:
    """What BlinkDL's files have and our export does not: layer 0's unused value
    residual, vectors stored flat, bf16."""
    model = random_rwkv("rwkv7")
    state = rwkv_state_dict(model, torch.bfloat16)
    C = 32
    for name in RWKV7_LAYER0_UNUSED:
        state[name] = torch.zeros((1, 1, C) if name.endswith("v0") else
                                  ((C, 32) if name.endswith("v1") else (32, C)))
    state["blocks.1.att.w0"] = state["blocks.1.att.w0"].reshape(-1)
    path = tmp_path / "released.pth"
    torch.save(state, path)
    src = imports.load(str(path))
    assert src.kind == "rwkv-pth" and src.config["head_size"] == 8
    assert not any(k in src.state for k in RWKV7_LAYER0_UNUSED)
    for name, tensor in model.state_dict().items():
        want = tensor.to(torch.bfloat16).float()
        assert src.state[name].dtype == torch.float32 and torch.equal(src.state[name], want)


def test_rwkv_pth_that_does_not_fit_names_the_file_and_tensor(tmp_path: Path) -> None:
    state = rwkv_state_dict(random_rwkv("rwkv7"))
    state["blocks.1.ffn.key.weight"] = torch.zeros(100, 32)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(SymatoError, match=r"bad\.pth: tensor 'blocks\.1\.ffn\.key\.weight' "
                                          r"has shape \[100, 32\]"):
        imports.load(str(path))
    del state["blocks.1.ffn.key.weight"]
    torch.save(state, path)
    with pytest.raises(SymatoError, match=r"bad\.pth: tensor 'blocks\.1\.ffn\.key\.weight' "
                                          "missing"):
        imports.load(str(path))


class Payload:  # a pickled object: loading it would run code
    def __reduce__(self):
        return (print, ("ran",))


def test_a_file_that_needs_unpickling_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"emb.weight": Payload()}, protocol=2))
    with pytest.raises(SymatoError, match=r"evil\.pth: not a weights-only PyTorch file"):
        imports.load(str(path))


def test_spec_syntax() -> None:
    assert imports.parse_spec("rwkv-pth:a/b.pth") == ("rwkv-pth", Path("a/b.pth"))
    assert imports.parse_spec("hf:x") == ("hf", Path("x"))
    assert imports.parse_spec("results/runs/t/r/model.pt")[0] == "run"
    assert imports.parse_spec("m.pth")[0] == "rwkv-pth"
    with pytest.raises(SymatoError, match="unknown prefix 'gguf'"):
        imports.parse_spec("gguf:m.bin")


# ---------------------------------------------------------------------- runs from runs
@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    """A tiny GPT run trained to the end (its folder)."""
    tmp = tmp_path_factory.mktemp("source")
    settings = make_settings(tmp, steps=10, eval_interval=0)
    out = tmp / "run"
    assert train_main(["--settings", str(settings), "--out", str(out)]) == 0
    (out / "settings.json").write_text(settings.read_text())  # as the workflow's run folders
    return out


def trainer_for(tmp: Path, shards: Path | None = None, **over) -> Trainer:
    if shards is not None:
        over["shards_dir"] = str(shards)
    return Trainer(load_settings(make_settings(tmp, **over)), tmp / "run", resume=False)


def test_run_from_a_run_starts_with_its_weights(tmp_path: Path, source_run: Path) -> None:
    source, _ = load_model(source_run)
    trainer = trainer_for(tmp_path, init_from=f"run:{source_run}")
    for name, tensor in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    assert trainer.init_record["transplant"] is None  # the same vocabulary
    assert trainer.init_record["sha256"] == run_inputs(trainer.s)["init"]


def test_train_layers_head_leaves_the_rest_unchanged(tmp_path: Path, source_run: Path) -> None:
    source, _ = load_model(source_run)
    settings = make_settings(tmp_path, init_from=str(source_run), train_layers="head",
                             init_warmup=False, warmup=0.5, steps=4, eval_interval=0)
    assert train_main(["--settings", str(settings), "--out", str(tmp_path / "run")]) == 0
    # init_warmup false: the peak lr at once (with warmup, step 1 would have half of it)
    assert read_metrics(tmp_path / "run")[0]["lr"] == pytest.approx(0.01)
    trained, meta = load_model(tmp_path / "run")
    changed = {n for n, t in trained.state_dict().items()
               if not torch.equal(t, source.state_dict()[n])}
    assert changed == {"head.weight", "ln_f.weight", "ln_f.bias"}
    assert meta["init"]["from"] == str(source_run)
    assert meta["inputs"]["init"] == meta["init"]["sha256"]


def test_init_optimizer_needs_a_training_state(tmp_path: Path, source_run: Path) -> None:
    with pytest.raises(SymatoError, match="init_optimizer needs a training state"):
        trainer_for(tmp_path, init_from=str(source_run), init_optimizer=True)
    first = trainer_for(tmp_path / "a")  # a training state of this pipeline
    first.train_step()
    state_path = tmp_path / "a" / "checkpoint.pt"
    torch.save(first.state_dict(), state_path)
    second = trainer_for(tmp_path / "b", init_from=f"run:{state_path}", init_optimizer=True)
    assert torch.equal(second.optimizer.state_dict()["state"][0]["exp_avg"],
                       first.optimizer.state_dict()["state"][0]["exp_avg"])


# ---------------------------------------------------------------------- other sources
def test_run_from_an_exported_rwkv7(tmp_path: Path) -> None:
    model = random_rwkv("rwkv7", vocab=24, n_embd=16)
    pth = tmp_path / "rwkv7.pth"
    torch.save(rwkv_state_dict(model), pth)
    over = dict(arch="rwkv7", run="rwkv7-L2-D16-T10k", n_layer=2, n_embd=16,
                wkv_backend="torch", init_from=f"rwkv-pth:{pth}")
    with pytest.raises(SymatoError, match="the source carries no tokenizer"):
        trainer_for(tmp_path, **over)
    trainer = trainer_for(tmp_path, init_tokenizer=str(tmp_path / "vocab.json"), **over)
    for name, tensor in model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name
    with pytest.raises(SymatoError, match=r"rwkv7\.pth: model n_embd is 16, the run's is 32"):
        trainer_for(tmp_path, **{**over, "n_embd": 32, "run": "rwkv7-L2-D32-T10k"},
                    init_tokenizer=str(tmp_path / "vocab.json"))


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory) -> Path:
    """A Llama made and saved by transformers' own classes, with a byte-level BPE
    tokenizer.json beside it."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("llama")
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(["the cat sat on the mat", "người Việt và tiếng Việt"], trainer)
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(3)
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=16,
                                   num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=48, rms_norm_eps=1e-5,
                                   max_position_embeddings=16)
    transformers.LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def test_run_from_a_transformers_llama_onto_another_tokenizer(tmp_path: Path,
                                                              hf_llama: Path) -> None:
    from symato.interop.weights import from_hf, read_hf_folder
    from symato.text.vocab import build_vocab

    vocab = build_vocab("bytes")
    vocab.save(tmp_path / "vocab.json")
    shards = make_shards(tmp_path / "bytes-shards", vocab_size=vocab.vocab_size)
    trainer = trainer_for(tmp_path, shards, arch="llama", run="llama-L1-D16-T10k",
                          init_from=f"hf:{hf_llama}")
    report = json.loads((tmp_path / "run" / "transplant.json").read_text())
    # every byte is one token of the byte-level BPE, and so is the end of text
    assert (report["copied"], report["composed"], report["random"]) == (257, 0, 0)
    assert trainer.init_record["transplant"]["counts"]["copied"] == 257
    _, _, state = from_hf(*read_hf_folder(hf_llama))
    ours = trainer.model.state_dict()
    for name, tensor in state.items():
        if name not in ("tok_embeddings.weight", "output.weight"):
            assert torch.equal(ours[name], tensor), name
    space = json.loads((hf_llama / "tokenizer.json").read_text())["model"]["vocab"]["Ġ"]
    assert torch.equal(ours["tok_embeddings.weight"][32], state["tok_embeddings.weight"][space])


# ---------------------------------------------------------------------- config errors
def test_config_errors_before_any_job(tmp_path: Path, source_run: Path, hf_llama: Path) -> None:
    base = json.loads(make_settings(tmp_path).read_text())
    with pytest.raises(SymatoError, match=r"run/settings\.json: n_embd is 16, the run's is 32"):
        check_settings({**base, "n_embd": 32, "init_from": str(source_run)}, "cfg")
    with pytest.raises(SymatoError, match=r"config\.json: arch is 'llama', the run's is 'gpt'"):
        check_settings({**base, "init_from": f"hf:{hf_llama}"}, "cfg")
    with pytest.raises(SymatoError, match=r"\['init_optimizer'\] need init_from"):
        check_settings({**base, "init_optimizer": True}, "cfg")
    with pytest.raises(SymatoError, match="train_layers 'last-3': the model has 1 layers"):
        check_settings({**base, "train_layers": "last-3"}, "cfg")
    # defaults are not written, so adding these settings reruns no finished run
    assert "init_from" not in ordered({**base, "init_from": "", "train_layers": "all"})
    assert ordered({**base, "init_from": "x.pth"})["init_from"] == "x.pth"


def test_settings_command_writes_the_init_settings(tmp_path: Path, source_run: Path) -> None:
    """The workflow's run_settings job: options in, the same settings.json out; the
    train job waits for the source's model.pt (a run not trained yet included)."""
    from symato.run.settings import command_args
    from symato.run.settings import main as settings_main

    base = json.loads(make_settings(tmp_path).read_text())
    want = ordered({**base, "init_from": str(source_run), "init_optimizer": False,
                    "init_warmup": False, "train_layers": "last-1"})
    out = tmp_path / "written.json"
    assert settings_main(["--out", str(out), *command_args(want)]) == 0
    assert json.loads(out.read_text()) == want
    assert imports.input_files(str(source_run)) == [source_run / "model.pt"]
    assert imports.input_files("results/runs/t/gpt-L1-D16-T10k") == [
        Path("results/runs/t/gpt-L1-D16-T10k/model.pt")]


@pytest.mark.parametrize("method", ["compose", "random"])
def test_transplant_onto_symato_composes_or_draws_the_other_rows(tmp_path: Path, hf_llama: Path,
                                                                 method: str) -> None:
    """The symato vocabulary against a 300-token byte-level BPE: bytes copied, syms,
    marktones and case composed from the text they stand for (``compose``), or drawn at
    random (the control: the same copied rows, nothing composed)."""
    from symato.interop.transplant import load_source, plan
    from symato.interop.weights import from_hf, read_hf_folder
    from symato.text.tokenizer import Tokenizer

    target = Tokenizer.default()
    target.save(tmp_path / "vocab.json")
    shards = make_shards(tmp_path / "sym-shards", vocab_size=target.vocab_size)
    trainer = trainer_for(tmp_path, shards, arch="llama", run="llama-L1-D16-T10k",
                          init_from=str(hf_llama), init_transplant=method)
    report = json.loads((tmp_path / "run" / "transplant.json").read_text())
    want = plan(load_source(hf_llama / "tokenizer.json"), target, "compose").report()
    assert report["copied"] == want["copied"] >= 257
    if method == "compose":
        assert (report["composed"], report["random"]) == (want["composed"], want["random"])
        assert report["composed"] > 1000  # every sym, marktone and case id
    else:
        assert report["composed"] == 0
        assert report["random"] == want["composed"] + want["random"]
    _, _, state = from_hf(*read_hf_folder(hf_llama))
    source = load_source(hf_llama / "tokenizer.json")
    title = target.piece_to_id("<Title>")
    rows = state["tok_embeddings.weight"]
    composed = torch.stack([rows[source.encode_word(t)].mean(0)
                            for t in "ABCDĐEGHIKLMNOPQRSTUVXY"]).mean(0)  # <Title>'s texts
    got = trainer.model.state_dict()["tok_embeddings.weight"][title]
    assert torch.allclose(got, composed, atol=1e-6) == (method == "compose")


# ---------------------------------------------------------------------- the grid
def test_a_sub_grid_init_names_its_runs_and_fills_the_source_path() -> None:
    """The same runs from scratch and from a source, in one grid: the source's runs keep
    their names, the started ones are ...-from_{name}, init.from is filled per run."""
    import copy
    import re

    import yaml
    from _workflow import REPO, prepared

    from symato.run.grid import eval_group, expand_grid, run_name_pattern, split_name

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    scratch = {"name": "scratch", "tokenizers": ["bytes"], "archs": ["gpt", "llama"],
               "sizes": ["L1-D32"], "bytes": [30000]}
    started = {**copy.deepcopy(scratch), "name": "moved",
               "init": {"name": "en", "from": "results/runs/{tokenizer}/{arch}-{size}-B30k",
                        "train_layers": "last-1", "warmup": False}}
    raw["train"]["grids"] = [scratch, started]
    config = prepared(raw)  # the schema takes a sub-grid's init
    runs = {r["run"]: r["settings"] for r in expand_grid(config)}
    assert set(runs) == {"gpt-L1-D32-B30k", "llama-L1-D32-B30k", "gpt-L1-D32-B30k-from_en",
                         "llama-L1-D32-B30k-from_en"}
    s = runs["llama-L1-D32-B30k-from_en"]
    assert s["init_from"] == "results/runs/bytes/llama-L1-D32-B30k"
    assert (s["train_layers"], s["init_warmup"]) == ("last-1", False)
    assert "init_from" not in runs["llama-L1-D32-B30k"]
    assert all(re.fullmatch(run_name_pattern(), name) for name in runs)
    assert split_name("gpt-L1-D32-B30k-from_en-lr0.002") == ("gpt-L1-D32-B30k-from_en",
                                                             {"lr": "0.002"})
    assert eval_group("gpt-L1-D32-B30k-from_en-s2") == "gpt-L1-D32-from_en"
    bad = copy.deepcopy(config)
    bad["train"]["grids"][1]["init"]["from"] = "results/{width}"
    with pytest.raises(SymatoError, match=r"init\.from 'results/\{width\}': 'width'"):
        expand_grid(bad)
    raw["train"]["grids"][1]["init"]["name"] = "En-1"
    with pytest.raises(SymatoError, match=r"grids\[1\]\.init\.name: 'En-1' does not match"):
        prepared(raw)


def test_a_started_run_waits_for_its_source_run(tmp_path: Path) -> None:
    """Dry run: asking for the started run alone schedules its source run's training too."""
    import subprocess

    import yaml
    from _workflow import REPO, SNAKEMAKE, prepared
    from test_grid import _workdir

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["tokenizers"] = ["bytes"]
    scratch = {"name": "scratch", "tokenizers": ["bytes"], "archs": ["gpt"],
               "sizes": ["L1-D32"], "tokens": [30000]}
    raw["train"]["grids"] = [scratch, {**scratch, "name": "moved", "init": {
        "name": "self", "from": "results/runs/{tokenizer}/{arch}-{size}-T30k"}}]
    work = _workdir(tmp_path, prepared(raw))
    target = "results/runs/bytes/gpt-L1-D32-T30k-from_self/model.pt"
    proc = subprocess.run([str(SNAKEMAKE), "-s", "Snakefile", "--cores", "1", "--dry-run",
                           "--quiet", "rules", "--", target], cwd=work, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^train\s+2\s*$", proc.stdout + proc.stderr, flags=re.M), proc.stdout


def test_run_from_a_transformers_rwkv4(tmp_path: Path) -> None:
    """RwkvForCausalLM (transformers' own class, save_pretrained) into an RWKV-4 run with
    the run's own vocabulary: every tensor through the one mapping of weights.py."""
    transformers = pytest.importorskip("transformers")
    from symato.interop.weights import RWKV4 as MAPPING

    torch.manual_seed(2)
    cfg = transformers.RwkvConfig(vocab_size=24, hidden_size=16, num_hidden_layers=2,
                                  context_length=16)
    hf = transformers.RwkvForCausalLM(cfg)
    hf.save_pretrained(str(tmp_path / "hf"))
    trainer = trainer_for(tmp_path, arch="rwkv4", run="rwkv4-L2-D16-T10k", n_layer=2,
                          wkv_backend="torch", init_from=f"hf:{tmp_path / 'hf'}",
                          init_tokenizer=str(tmp_path / "vocab.json"))
    theirs, ours = hf.state_dict(), trainer.model.state_dict()
    for rule in MAPPING.tensors:
        for _, mine, name in rule.names(2):
            assert torch.equal(ours[mine], theirs[name].float()), name
