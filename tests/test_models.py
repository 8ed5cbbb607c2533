"""RWKV-4 and GPT: shapes, names, init, counting formulas, RWKV-4's two modes, the GPT KV
cache, and the checkpoint format, also of files written under RWKV-4's old name ``rwkv``
(RWKV-7 and Llama have test_models_rwkv7.py and test_models_llama.py)."""

from __future__ import annotations

import math

import pytest
import torch

from symato.errors import SymatoError
from symato.models import build_model
from symato.models.gpt import GPT
from symato.models.rwkv4 import RWKV4
from symato.run.checkpoint import load_model, save_model
from symato.run.provenance import weights_digest

V, L, C, H, CTX = 37, 2, 16, 2, 24


def rwkv(**extra) -> RWKV4:
    torch.manual_seed(0)
    return build_model(
        "rwkv4",
        vocab_size=V,
        n_layer=L,
        n_embd=C,
        n_head=H,
        ctx_len=CTX,
        wkv_backend="torch",
        **extra,
    )


def gpt(**extra) -> GPT:
    torch.manual_seed(0)
    return build_model("gpt", vocab_size=V, n_layer=L, n_embd=C, n_head=H, ctx_len=CTX, **extra)


@torch.no_grad()
def randomize(model: torch.nn.Module, scale: float = 0.5) -> torch.nn.Module:
    """Random weights everywhere, incl. time_decay/time_first and the zero-inited matrices."""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.copy_(p + scale * torch.randn(p.shape, generator=g))
    return model


def test_rwkv_state_dict_uses_rwkv4_names_and_shapes():
    sd = rwkv().state_dict()
    expected = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,)}
    for i in range(L):
        b = f"blocks.{i}."
        expected.update({b + "ln1.weight": (C,), b + "ln1.bias": (C,)})
        expected.update({b + "ln2.weight": (C,), b + "ln2.bias": (C,)})
        expected.update({b + "att.time_decay": (C,), b + "att.time_first": (C,)})
        for m in "kvr":
            expected[b + f"att.time_mix_{m}"] = (1, 1, C)
        for m in ("key", "value", "receptance", "output"):
            expected[b + f"att.{m}.weight"] = (C, C)
        expected.update({b + "ffn.time_mix_k": (1, 1, C), b + "ffn.time_mix_r": (1, 1, C)})
        expected.update({b + "ffn.key.weight": (4 * C, C), b + "ffn.receptance.weight": (C, C)})
        expected[b + "ffn.value.weight"] = (C, 4 * C)
    expected.update({"ln_out.weight": (C,), "ln_out.bias": (C,), "head.weight": (V, C)})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_rwkv_init_follows_rwkv4():
    sd = rwkv().state_dict()
    for i in range(L):
        for name in ("att.key", "att.receptance", "att.output", "ffn.value", "ffn.receptance"):
            assert torch.count_nonzero(sd[f"blocks.{i}.{name}.weight"]) == 0, name
        # ffn.key is orthogonal with gain sqrt(4C/C) = 2: W^T W = 4 I
        wk = sd[f"blocks.{i}.ffn.key.weight"]
        torch.testing.assert_close(wk.T @ wk, 4 * torch.eye(C), atol=1e-4, rtol=0)
    assert sd["emb.weight"].abs().max() <= 1e-4
    # layer 0: decay ramp -5 + 8 (h/(C-1))^0.7, time_first log(0.3) + zigzag
    td = sd["blocks.0.att.time_decay"]
    assert td[0].item() == pytest.approx(-5.0) and td[-1].item() == pytest.approx(3.0)
    assert td[C // 2].item() == pytest.approx(-5 + 8 * ((C // 2) / (C - 1)) ** 0.7, abs=1e-5)
    tf = sd["blocks.0.att.time_first"]
    assert tf[:3].tolist() == pytest.approx(
        [math.log(0.3), math.log(0.3) + 0.5, math.log(0.3) - 0.5]
    )
    # last layer: time_mix_k = (h/C)^(1 - (L-1)/L), time_mix_v adds 0.3
    mk = sd[f"blocks.{L - 1}.att.time_mix_k"].flatten()
    assert mk[3].item() == pytest.approx((3 / C) ** (1 / L), rel=1e-6)
    mv = sd[f"blocks.{L - 1}.att.time_mix_v"].flatten()
    assert mv[3].item() == pytest.approx((3 / C) ** (1 / L) + 0.3, rel=1e-6)


def test_rwkv_gpt_mode_equals_rnn_mode():
    model = randomize(rwkv()).eval()
    idx = torch.randint(0, V, (3, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(idx)
        state, steps = model.init_state(3), []
        for t in range(idx.shape[1]):
            logits, state = model.forward_step(idx[:, t : t + 1], state)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
        # any split of the sequence gives the same logits and the same final state
        a, s1 = model.forward_step(idx[:, :4], None)
        b, s2 = model.forward_step(idx[:, 4:], s1)
        torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s2, state, atol=1e-5, rtol=1e-5)
    assert full.abs().max() > 1  # the random weights really produce non-trivial logits


def test_rwkv_trains_all_parameters():
    model = randomize(rwkv(), scale=0.1)
    idx = torch.randint(0, V, (2, 8))
    loss = torch.nn.functional.cross_entropy(model(idx).reshape(-1, V), idx.roll(-1, 1).flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


def test_gpt_kv_cache_equals_full_recompute():
    model = randomize(gpt(), scale=0.2).eval()
    idx = torch.randint(0, V, (2, CTX), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(idx)
        out, state = [], model.init_state(2)
        for lo, hi in ((0, 5), (5, 6), (6, 13), (13, CTX)):
            logits, state = model.forward_step(idx[:, lo:hi], state)
            out.append(logits)
    torch.testing.assert_close(torch.cat(out, 1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(SymatoError, match="ctx_len"):
        model.forward_step(idx[:, :1], state)


def test_gpt_init_and_tying():
    model = gpt()
    std = model.blocks[0].attn.c_attn.weight.std().item()
    assert std == pytest.approx(0.02, rel=0.15)
    proj = torch.cat([b.mlp.c_proj.weight.flatten() for b in model.blocks]).std().item()
    assert proj == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.15)
    tied = gpt(tie_weights=True)
    assert tied.head.weight is tied.wte.weight


def test_rwkv_param_counts_and_flops_by_hand():
    # per layer: 4 LN vectors (ln1, ln2), decay/first (2C), 5 time_mix (5C), att 4C^2, ffn 9C^2
    per_layer = 4 * C + 2 * C + 5 * C + 4 * C * C + 9 * C * C
    total = V * C + 2 * C + L * per_layer + 2 * C + V * C  # emb, ln0, blocks, ln_out, head
    model = rwkv()
    assert model.param_counts() == {"total": total, "non_embedding": total - V * C}
    assert sum(p.numel() for p in model.parameters()) == total
    assert model.flops_per_token() == 6 * (total - V * C)


def test_gpt_param_counts_and_flops_by_hand():
    per_layer = 4 * C + 3 * C * C + C * C + 4 * C * C + 4 * C * C  # 2 LNs, qkv, proj, mlp
    body = L * per_layer + 2 * C  # + ln_f
    untied = gpt()
    total = V * C + CTX * C + body + V * C
    assert untied.param_counts() == {"total": total, "non_embedding": body + V * C}
    assert untied.flops_per_token() == 6 * (body + V * C) + 6 * L * CTX * C
    tied = gpt(tie_weights=True)
    assert tied.param_counts() == {"total": total - V * C, "non_embedding": body}
    assert tied.flops_per_token() == 6 * (body + V * C) + 6 * L * CTX * C


def test_build_model_rejects_bad_config():
    with pytest.raises(SymatoError, match="n_embed"):
        build_model("rwkv4", vocab_size=V, n_layer=1, n_embd=C, n_head=1, ctx_len=8, n_embed=3)
    with pytest.raises(SymatoError, match="divisible"):
        build_model("gpt", vocab_size=V, n_layer=1, n_embd=10, n_head=3, ctx_len=8)
    with pytest.raises(SymatoError, match="n_layer"):
        build_model("gpt", vocab_size=V, n_layer=0, n_embd=8, n_head=2, ctx_len=8)
    with pytest.raises(SymatoError, match="mamba"):
        build_model("mamba", vocab_size=V, n_layer=1, n_embd=8, n_head=2, ctx_len=8)


@pytest.mark.parametrize("make", [rwkv, gpt], ids=["rwkv4", "gpt"])
def test_checkpoint_round_trip(tmp_path, make):
    model = randomize(make(), scale=0.1).eval()
    meta = {"run": "r1", "tokenizer": {"kind": "test", "pieces": ["a", "b"]}, "step": 7}
    run_dir = tmp_path / "runs" / "r1"
    save_model(run_dir / "model.pt", model, meta)
    assert [p.name for p in run_dir.iterdir()] == ["model.pt"]  # no temp file left behind
    for where in (run_dir, run_dir / "model.pt"):
        loaded, loaded_meta = load_model(where, wkv_backend="torch")  # rwkv() runs torch
        assert type(loaded) is type(model) and loaded.config == model.config
        digest = loaded_meta.pop("weights_sha256")  # added on save, checked on load
        assert digest == weights_digest(model.state_dict())
        assert loaded_meta == meta and not loaded.training
        idx = torch.randint(0, V, (1, 9))
        with torch.no_grad():
            torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)


def test_the_backend_is_not_saved_with_the_model(tmp_path):
    """A run trained with wkv_backend torch (or cuda) must not make every later load run
    that backend: the saved config says auto, the loader picks the backend (default
    auto), and a checkpoint written with another backend in its config loads as asked."""
    import torch as t

    model = randomize(rwkv(), scale=0.1).eval()  # built with wkv_backend="torch"
    save_model(tmp_path / "model.pt", model, {"backend": "torch"})
    payload = t.load(tmp_path / "model.pt", weights_only=True)
    assert payload["config"]["wkv_backend"] == "auto"
    loaded, meta = load_model(tmp_path / "model.pt")
    assert loaded.config.wkv_backend == "auto"
    assert meta["backend"] == "torch"  # what ran in training stays recorded
    payload["config"]["wkv_backend"] = "cuda"  # as checkpoints before this fix said
    t.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt")[0].config.wkv_backend == "auto"
    assert load_model(tmp_path / "old.pt", wkv_backend="torch")[0].config.wkv_backend == "torch"
    idx = t.randint(0, V, (1, 9))
    with t.no_grad():
        t.testing.assert_close(loaded(idx), model(idx), rtol=1e-4, atol=1e-5)
    save_model(tmp_path / "gpt.pt", gpt(), {})  # no operator: no key, nothing to set
    assert "wkv_backend" not in vars(load_model(tmp_path / "gpt.pt", wkv_backend="torch")[0].config)


def test_files_written_under_the_old_name_rwkv_load_as_rwkv4(tmp_path):
    """RWKV-4 was the architecture "rwkv" until it was named rwkv4: a checkpoint (and any
    settings.json) saying "rwkv" still loads, as an RWKV4, with the same outputs; what is
    written now says "rwkv4"."""
    from symato.models import model_for_run
    from symato.models.registry import architecture_of, get_architecture

    model = randomize(rwkv(), scale=0.1).eval()
    assert architecture_of(model) == "rwkv4"
    save_model(tmp_path / "model.pt", model, {})
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["arch"] == "rwkv4"
    payload["arch"] = "rwkv"  # as every RWKV-4 checkpoint written before the rename
    torch.save(payload, tmp_path / "old.pt")
    loaded, _ = load_model(tmp_path / "old.pt", wkv_backend="torch")
    assert type(loaded) is RWKV4 and architecture_of(loaded) == "rwkv4"
    idx = torch.randint(0, V, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx), model(idx), rtol=0, atol=0)
    assert get_architecture("rwkv") is get_architecture("rwkv4")
    settings = {"arch": "rwkv", "n_layer": 1, "n_embd": C, "ctx_len": 8, "head_size": 16,
                "wkv_backend": "torch"}  # an old run's settings.json
    assert type(model_for_run(settings, V)) is RWKV4


def test_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(SymatoError, match=r"not found: .*nope\.pt"):
        load_model(missing)
    good = tmp_path / "good.pt"
    save_model(good, rwkv(), {})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:200])
    with pytest.raises(SymatoError, match=r"cannot read checkpoint .*corrupt\.pt"):
        load_model(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(SymatoError, match=r"foreign\.pt is not a symato model checkpoint"):
        load_model(foreign)
    with pytest.raises(SymatoError, match="JSON-like"):
        save_model(tmp_path / "bad.pt", rwkv(), {"x": object()})
    assert not (tmp_path / "bad.pt").exists()
