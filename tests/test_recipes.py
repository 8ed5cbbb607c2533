"""Every architecture trained as its authors train it (issue #22), checked parameter by
parameter against tables that cite their sources, and the trainer's first step by hand.

Sources (docs/models.md, "Training recipes", gives files and commits):

* RWKV-4: BlinkDL/RWKV-LM RWKV-v4neo ``src/model.py`` ``configure_optimizers`` (with
  ``layerwise_lr``, on by default: ``time_decay`` 2x, ``time_first`` 3x, every group
  weight decay 0; with ``--weight_decay > 0`` the parameters with >= 2 dimensions after
  ``squeeze`` decay) and ``train.py`` defaults (betas 0.9/0.99, eps 1e-8, weight decay 0).
* RWKV-7: BlinkDL/RWKV-LM RWKV-v7/train_temp ``src/model.py`` ``configure_optimizers``
  (``att.w0`` 2x without decay; decay: ``len(p.squeeze().shape) >= 2 and ".weight" in n``),
  ``demo-training-run.sh`` (betas 0.9/0.99, ``--adam_eps 1e-18``); L2Wrap 1e-4.
* GPT: karpathy/nanoGPT ``model.py`` (decay every parameter with ``dim() >= 2``; init
  N(0, 0.02), ``c_proj.weight`` N(0, 0.02/sqrt(2 n_layer))), ``train.py`` (betas 0.9/0.95,
  weight decay 0.1).
* Transformer++: the Mamba paper's baseline recipe (AdamW 0.9/0.95, weight decay 0.1);
  decay grouping of Dao-AILab/flash-attention ``training/src/optim/param_grouping.py``
  (``nn.Linear`` weights decay; ``nn.Embedding`` and norms do not).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from _train_fixtures import make_settings, read_metrics, restore_torch_globals  # noqa: F401
from torch.nn import functional as F

from symato.models import build_model, model_for_run
from symato.run.grid import shared_settings
from symato.run.recipes import L2Wrap, l2wrap, parameter_groups
from symato.run.settings import default_settings, load_settings

# (name pattern, learning-rate multiplier, decayed) per architecture; the first full
# match wins and every parameter must match one.
TABLES: dict[str, list[tuple[str, float, bool]]] = {
    "rwkv4": [  # RWKV-v4neo configure_optimizers (layerwise_lr 1)
        (r"blocks\.\d+\.att\.time_decay", 2.0, False),
        (r"blocks\.\d+\.att\.time_first", 3.0, False),
        (r"blocks\.\d+\.(att|ffn)\.time_mix_[kvr]", 1.0, False),
        (r"blocks\.\d+\.(att|ffn)\.(key|value|receptance|output)\.weight", 1.0, True),
        (r"blocks\.\d+\.ln[012]\.(weight|bias)|ln_out\.(weight|bias)", 1.0, False),
        (r"emb\.weight|head\.weight", 1.0, True),
    ],
    "rwkv7": [  # RWKV-v7/train_temp configure_optimizers
        (r"blocks\.\d+\.att\.w0", 2.0, False),
        (r"blocks\.\d+\.att\.(receptance|key|value|output)\.weight", 1.0, True),
        (r"blocks\.\d+\.ffn\.(key|value)\.weight", 1.0, True),
        (r"blocks\.\d+\.att\.[wavg][12]", 1.0, False),  # low-rank paths: no ".weight"
        (r"blocks\.\d+\.att\.(x_[rwkvag]|a0|v0|k_k|k_a|r_k)|blocks\.\d+\.ffn\.x_k", 1.0, False),
        (r"blocks\.\d+\.(att\.ln_x|ln[012])\.(weight|bias)|ln_out\.(weight|bias)", 1.0, False),
        (r"emb\.weight|head\.weight", 1.0, True),
    ],
    "gpt": [  # nanoGPT configure_optimizers: p.dim() >= 2
        (r"wte\.weight|wpe\.weight|head\.weight", 1.0, True),
        (r"blocks\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight", 1.0, True),
        (r"blocks\.\d+\.ln_[12]\.(weight|bias)|ln_f\.(weight|bias)", 1.0, False),
    ],
    "llama": [  # flash-attention param_grouping: Linear weights only
        (r"layers\.\d+\.attention\.w[qkvo]\.weight|layers\.\d+\.feed_forward\.w[123]\.weight",
         1.0, True),
        (r"output\.weight", 1.0, True),
        (r"tok_embeddings\.weight", 1.0, False),
        (r"layers\.\d+\.(attention_norm|ffn_norm)\.weight|norm\.weight", 1.0, False),
    ],
}
# The AdamW settings and extra loss of each recipe (same sources).
OPTIMIZER = {
    "rwkv4": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.0, "l2wrap": 1e-4},
    "rwkv7": {"beta1": 0.9, "beta2": 0.99, "eps": 1e-18, "weight_decay": 0.1, "l2wrap": 1e-4},
    "gpt": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "l2wrap": 0.0},
    "llama": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "l2wrap": 0.0},
}
V = 40


def settings_for(arch: str, n_layer: int = 2, n_embd: int = 32, **over) -> dict:
    return default_settings(tokenizer="t", arch=arch, n_layer=n_layer, n_embd=n_embd,
                            tokens=1000, shards_dir="s", vocab_file="v", head_size=16,
                            wkv_backend="torch", ctx_len=16, **over)


def expected(arch: str, name: str) -> tuple[float, bool]:
    for pattern, scale, decayed in TABLES[arch]:
        if re.fullmatch(pattern, name):
            return scale, decayed
    raise AssertionError(f"{arch}: parameter {name} is in no row of the table")


@pytest.mark.parametrize("arch", sorted(TABLES))
def test_every_parameter_gets_its_authors_multiplier_and_decay(arch: str) -> None:
    s = settings_for(arch)
    assert {k: s[k] for k in OPTIMIZER[arch]} == OPTIMIZER[arch] and s["layerwise_lr"] is True
    model = model_for_run(s, V)
    groups = parameter_groups(model, s)
    seen = [n for g in groups for n in g["names"]]
    assert sorted(seen) == sorted(n for n, _ in model.named_parameters())  # each exactly once
    for g in groups:
        for name in g["names"]:
            scale, decayed = expected(arch, name)
            assert (g["lr_scale"], g["decay"]) == (scale, decayed), name
            assert g["weight_decay"] == (s["weight_decay"] if decayed else 0.0), name
    # an override by name: weight decay for RWKV-4 (v4neo's --weight_decay), multipliers off
    over = settings_for(arch, weight_decay=0.05, layerwise_lr=False)
    for g in parameter_groups(model_for_run(over, V), over):
        assert g["lr_scale"] == 1.0
        assert all(g["weight_decay"] == (0.05 if expected(arch, n)[1] else 0.0)
                   for n in g["names"])


def test_config_values_default_to_the_recipe_and_override_by_name() -> None:
    train = {"settings": {"lr": 0.004, "eps": "recipe", "beta2": None, "weight_decay": 0.02},
             "arch_overrides": {"rwkv7": {"eps": 1e-8}}}
    s7, s4 = shared_settings(train, "rwkv7"), shared_settings(train, "rwkv4")
    assert (s7["eps"], s7["beta2"], s7["weight_decay"], s7["recipe"]) == (
        1e-8, 0.99, 0.02, "rwkv7-train_temp")
    assert (s4["eps"], s4["beta2"], s4["l2wrap"], s4["recipe"]) == (1e-8, 0.99, 1e-4,
                                                                    "rwkv4-v4neo")
    gpt = shared_settings({"settings": {}, "arch_overrides": {}}, "gpt")
    assert (gpt["beta2"], gpt["weight_decay"], gpt["l2wrap"]) == (0.95, 0.1, 0.0)


# ----------------------------------------------------------------------------- init
def assert_orthogonal(w: torch.Tensor, gain: float, name: str) -> None:
    """Rows (wide) or columns (tall) orthonormal, times ``gain``."""
    w = w.double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    torch.testing.assert_close(gram, gain**2 * eye, atol=1e-5 * max(1.0, gain**2), rtol=0,
                               msg=name)


def assert_normal(w: torch.Tensor, std: float, name: str) -> None:
    """Sample mean and std of an N(0, std) tensor within 6 standard errors."""
    n = w.numel()
    assert abs(float(w.mean())) < 6 * std / math.sqrt(n), name
    assert abs(float(w.std()) / std - 1) < 6 / math.sqrt(2 * n), name


def assert_uniform(w: torch.Tensor, bound: float, name: str) -> None:
    assert float(w.abs().max()) <= bound, name
    assert abs(float(w.std()) / (bound / math.sqrt(3)) - 1) < 6 / math.sqrt(2 * w.numel()), name


WIDTHS = [(2, 32), (3, 64)]


@pytest.mark.parametrize(("L", "C"), WIDTHS)
def test_rwkv4_init_matches_v4neo(L: int, C: int) -> None:
    model = build_model("rwkv4", vocab_size=V, n_layer=L, n_embd=C, ctx_len=8)
    h = torch.arange(C, dtype=torch.float64)
    checked = set()
    for name, p in model.named_parameters():
        i = int(name.split(".")[1]) if name.startswith("blocks.") else -1
        r01, r10 = i / (L - 1), 1 - i / L
        ddd = h / C
        if name.endswith("att.time_decay"):
            want = -5 + 8 * (h / (C - 1)) ** (0.7 + 1.3 * r01)
        elif name.endswith("att.time_first"):
            want = math.log(0.3) + 0.5 * (((h + 1) % 3) - 1)
        elif name.endswith(("att.time_mix_k", "ffn.time_mix_k", "ffn.time_mix_r")):
            want = ddd**r10
        elif name.endswith("att.time_mix_v"):
            want = ddd**r10 + 0.3 * r01
        elif name.endswith("att.time_mix_r"):
            want = ddd ** (0.5 * r10)
        elif re.search(r"\.ln[012]\.weight$|^ln_out\.weight$", name):
            want = torch.ones(C, dtype=torch.float64)
        elif re.search(r"\.ln[012]\.bias$|^ln_out\.bias$", name):
            want = torch.zeros(C, dtype=torch.float64)
        elif re.search(r"att\.(key|receptance|output)\.weight$|ffn\.(value|receptance)\.weight$",
                       name):
            want = torch.zeros(p.shape, dtype=torch.float64)
        elif name == "emb.weight":
            assert_uniform(p.detach(), 1e-4, name)
            checked.add(name)
            continue
        else:  # orthogonal, gain sqrt(out/in) when tall; head x 0.5
            out, inp = p.shape
            gain = (math.sqrt(out / inp) if out > inp else 1.0) * (0.5 if name == "head.weight"
                                                                    else 1.0)
            assert_orthogonal(p.detach(), gain, name)
            checked.add(name)
            continue
        torch.testing.assert_close(p.detach().double().reshape(want.shape), want, rtol=0,
                                   atol=1e-6, msg=name)
        checked.add(name)
    assert checked == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize(("L", "C"), WIDTHS)
def test_rwkv7_init_matches_train_temp(L: int, C: int) -> None:
    N = 16
    model = build_model("rwkv7", vocab_size=V, n_layer=L, n_embd=C, ctx_len=8, head_size=N)
    c = torch.arange(C, dtype=torch.float64)
    ddd, lin = c / C, c / (C - 1) - 0.5
    z = ((c % N) - (N - 1) / 2) / ((N - 1) / 2)
    zig = z * z.abs()
    powers = {"r": 0.2, "w": 0.9, "k": 0.7, "v": 0.7, "a": 0.9, "g": 0.2}
    checked = set()
    for name, p in model.named_parameters():
        i = int(name.split(".")[1]) if name.startswith("blocks.") else -1
        r01, r10 = i / (L - 1), 1 - i / L
        leaf = name.rsplit(".", 1)[-1]
        t = p.detach().double()
        if m := re.fullmatch(r"blocks\.\d+\.att\.x_([rwkvag])", name):
            want = 1 - ddd ** (powers[m.group(1)] * r10)
        elif name.endswith("ffn.x_k"):
            want = 1 - ddd ** (r10**4)
        elif name.endswith("att.w0"):
            want = -6 + 6 * (c / (C - 1)) ** (1 + r01**0.3) + 0.5 + 2.5 * zig
        elif name.endswith("att.a0"):
            want = -0.19 + 0.3 * zig + 0.4 * lin
        elif name.endswith("att.v0"):
            want = 0.73 - 0.4 * lin
        elif name.endswith("att.k_k"):
            want = 0.71 - 0.1 * lin
        elif name.endswith("att.k_a"):
            want = torch.full((C,), 1.02, dtype=torch.float64)
        elif name.endswith("att.r_k"):
            want = torch.full(p.shape, -0.04, dtype=torch.float64)
        elif name.endswith("att.ln_x.weight"):
            want = torch.full((C,), ((i + 1) / L) ** 0.7, dtype=torch.float64)
        elif re.search(r"(ln[012]|ln_out)\.weight$", name):
            want = torch.ones(C, dtype=torch.float64)
        elif name.endswith("bias"):
            want = torch.zeros(C, dtype=torch.float64)
        elif leaf in ("w1", "a1", "v1", "g1") or name.endswith(("att.output.weight",
                                                                 "ffn.value.weight")):
            want = torch.zeros(p.shape, dtype=torch.float64)
        elif leaf in ("w2", "a2", "v2", "g2"):  # ortho_init(x, 0.1): tall gets sqrt(out/in)
            rank = p.shape[0]
            assert rank == 32  # the authors' floor at these widths
            assert_orthogonal(t, 0.1 * (math.sqrt(rank / C) if rank > C else 1.0), name)
            checked.add(name)
            continue
        elif name == "emb.weight":
            assert_uniform(t, 1e-4, name)
            checked.add(name)
            continue
        else:  # generate_init_weight: orthogonal, gain 1; att.key 0.1; head 0.5 sqrt(V/C)
            gain = {"head.weight": 0.5 * math.sqrt(V / C) if V > C else 0.5}.get(
                name, 0.1 if name.endswith("att.key.weight") else 1.0)
            assert_orthogonal(t, gain, name)
            checked.add(name)
            continue
        torch.testing.assert_close(t.reshape(want.shape), want, rtol=0, atol=1e-6, msg=name)
        checked.add(name)
    assert checked == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("arch", ["gpt", "llama"])
@pytest.mark.parametrize(("L", "C"), WIDTHS)
def test_transformer_init_matches_gpt2_scheme(arch: str, L: int, C: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, vocab_size=V, n_layer=L, n_embd=C, ctx_len=64, n_head=C // 16)
    residual = ("c_proj.weight",) if arch == "gpt" else ("attention.wo.weight",
                                                         "feed_forward.w2.weight")
    for name, p in model.named_parameters():
        t = p.detach().double()
        if p.ndim == 2:
            std = 0.02 / math.sqrt(2 * L) if name.endswith(residual) else 0.02
            assert_normal(t, std, name)
        elif name.endswith("bias"):
            assert torch.equal(t, torch.zeros_like(t)), name
        else:
            assert torch.equal(t, torch.ones_like(t)), name


# ----------------------------------------------------------------------------- L2Wrap
def test_l2wrap_gradient_is_the_formula_and_the_loss_is_unchanged() -> None:
    torch.manual_seed(1)
    B, T, Vv = 3, 5, 11
    logits = (torch.randn(B, T, Vv, dtype=torch.float64) * 3).requires_grad_()
    targets = torch.randint(0, Vv, (B, T))
    plain = F.cross_entropy(logits.reshape(-1, Vv), targets.reshape(-1))
    wrapped = l2wrap(plain, logits, 1e-4)
    assert wrapped.item() == plain.item()
    for scale in (1.0, 0.25):  # the incoming gradient scales both terms (grad_accum)
        (g_plain,) = torch.autograd.grad(plain * scale, logits, retain_graph=True)
        (g_wrap,) = torch.autograd.grad(wrapped * scale, logits, retain_graph=True)
        top, ids = logits.detach().max(-1)
        extra = torch.zeros(B, T, Vv, dtype=torch.float64)
        for b in range(B):
            for t in range(T):
                extra[b, t, ids[b, t]] = 1e-4 / (B * T) * top[b, t]
        torch.testing.assert_close(g_wrap - g_plain, scale * extra, rtol=1e-5, atol=1e-10)
    assert l2wrap(plain, logits, 0.0) is plain
    assert L2Wrap.apply(plain, logits, 1e-4).item() == plain.item()


# ----------------------------------------------------------------------------- the trainer
def _settings(tmp: Path) -> Path:
    return make_settings(tmp, arch="rwkv7", run="rwkv7-L2-D32-T2k", n_layer=2, n_embd=32,
                         head_size=16, wkv_backend="torch", steps=3, eval_interval=0,
                         checkpoint_steps=0, grad_clip=0.0)


def test_training_is_deterministic(tmp_path: Path) -> None:
    from symato.run.train import main

    runs = []
    for name in ("a", "b"):
        path = _settings(tmp_path / name)
        assert main(["--settings", str(path), "--out", str(tmp_path / name / "run")]) == 0
        runs.append(tmp_path / name / "run")
    la, lb = ([r["train_loss"] for r in read_metrics(r)] for r in runs)
    assert len(la) == 3 and la == lb
    wa, wb = (torch.load(r / "model.pt", weights_only=True)["state_dict"] for r in runs)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_first_step_is_adamw_with_the_recipe_by_hand(tmp_path: Path) -> None:
    from symato.run.train import Trainer, learning_rate

    s = load_settings(_settings(tmp_path))
    trainer = Trainer(s, tmp_path / "run", resume=False)
    model = trainer.model
    with torch.no_grad():  # the authors' zero output matrices would leave w0, key, ... at
        gen = torch.Generator().manual_seed(3)  # zero gradient in the first step
        for name, p in model.named_parameters():
            if name.endswith(("att.output.weight", "ffn.value.weight")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng_state = trainer.rng.bit_generator.state
    # the gradient of the step's batch, by autograd on a copy of the weights
    trainer.rng.bit_generator.state = rng_state
    ((x, y),) = list(trainer.micro_batches())
    trainer.rng.bit_generator.state = rng_state
    logits = model(x)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    grads = dict(zip(before, torch.autograd.grad(l2wrap(loss, logits, s["l2wrap"]),
                                                 list(model.parameters())), strict=True))
    trainer.train_step()
    lr0 = learning_rate(0, s)
    b1, b2, eps = s["beta1"], s["beta2"], s["eps"]
    assert (b1, b2, eps, s["weight_decay"]) == (0.9, 0.99, 1e-18, 0.1)
    # one parameter of each group: 2x without decay, decayed matrix, low-rank path, vector
    cases = {"blocks.1.att.w0": (2.0, 0.0), "blocks.1.att.key.weight": (1.0, 0.1),
             "emb.weight": (1.0, 0.1), "blocks.1.att.w1": (1.0, 0.0),
             "blocks.0.att.k_k": (1.0, 0.0)}
    for name, (scale, wd) in cases.items():
        g, p0 = grads[name].double(), before[name].double()
        assert g.abs().sum() > 0, name
        lr = lr0 * scale
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1), v / (1 - b2)
        want = p0 * (1 - lr * wd) - lr * m_hat / (v_hat.sqrt() + eps)
        got = dict(model.named_parameters())[name].detach().double()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7, msg=name)
    groups = {g["lr_scale"]: g for g in trainer.optimizer.param_groups}
    assert groups[2.0]["lr"] == pytest.approx(2 * lr0) and groups[1.0]["lr"] == lr0
    trainer.train_step()  # the multiplier holds at every step, on the schedule's rate
    assert groups[2.0]["lr"] == pytest.approx(2 * learning_rate(1, s))


def test_checkpoints_from_before_the_lora_rule_load_capped() -> None:
    from symato.models import config_dict
    from symato.run.checkpoint import model_from_payload

    old = build_model("rwkv7", vocab_size=V, n_layer=2, n_embd=32, ctx_len=8, head_size=16,
                      lora="capped")
    config = {k: v for k, v in config_dict(old).items() if k != "lora"}  # as saved pre-#22
    payload = {"arch": "rwkv7", "config": config, "state_dict": old.state_dict(), "meta": {}}
    loaded = model_from_payload(payload, "old checkpoint")
    assert loaded.config.lora == "capped" and loaded.blocks[1].att.v1.shape == (32, 8)
    assert build_model("rwkv7", vocab_size=V, n_layer=2, n_embd=32, ctx_len=8,
                       head_size=16).config.lora == "authors"
