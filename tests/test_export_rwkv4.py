"""``symato export`` produces a file the real ``rwkv`` package (ChatRWKV's runtime) loads,
and that runtime computes the same logits as our model."""

from __future__ import annotations

import os

import pytest
import torch

from symato.cli import main as cli_main
from symato.models import build_model
from symato.run.checkpoint import save_model

V, L, C = 41, 3, 32


@pytest.fixture(scope="module")
def rwkv_runtime():
    """The ``rwkv`` package's RWKV class, imported with JIT and CUDA off (plain CPU fp32)."""
    os.environ.setdefault("RWKV_JIT_ON", "0")
    os.environ.setdefault("RWKV_CUDA_ON", "0")
    from rwkv.model import RWKV as RwkvRuntime

    return RwkvRuntime


@pytest.fixture()
def exported(tmp_path):
    """A random-weight RWKV saved as a checkpoint and exported with the CLI."""
    torch.manual_seed(0)
    model = build_model(
        "rwkv4", vocab_size=V, n_layer=L, n_embd=C, n_head=1, ctx_len=16, wkv_backend="torch"
    )
    with torch.no_grad():  # random everywhere, including time_* and zero-inited matrices
        for p in model.parameters():
            p.add_(0.4 * torch.randn_like(p))
    save_model(tmp_path / "run" / "model.pt", model, {"run": "x"})
    out = tmp_path / "model.pth"
    assert cli_main(["export", "--ckpt", str(tmp_path / "run"), "--out", str(out)]) == 0
    return model.eval(), out


def test_rwkv_package_matches_our_logits(rwkv_runtime, exported):
    model, path = exported
    runtime = rwkv_runtime(str(path), strategy="cpu fp32", verbose=False)
    tokens = [5, 0, 17, 40, 3, 3, 22, 9]
    with torch.no_grad():
        ours = model(torch.tensor([tokens]))[0]
    # sequence mode, all positions
    theirs, state = runtime.forward(tokens[:5], None, full_output=True)
    torch.testing.assert_close(theirs, ours[:5], atol=1e-5, rtol=1e-5)
    # then the runtime's RNN mode, one token at a time, continuing its own state
    for t in range(5, len(tokens)):
        logits, state = runtime.forward([tokens[t]], state)
        torch.testing.assert_close(logits, ours[t], atol=1e-5, rtol=1e-5)
    assert ours.abs().max() > 1  # non-trivial logits


def test_export_file_is_a_plain_rwkv4_state_dict(exported):
    model, path = exported
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert set(sd) == set(model.state_dict())
    assert all(t.dtype == torch.float32 for t in sd.values())
    torch.testing.assert_close(sd["blocks.1.att.time_decay"], model.blocks[1].att.time_decay)


def test_export_bf16_keeps_decay_in_fp32(tmp_path, exported):
    _, path = exported
    out = tmp_path / "bf16.pth"
    ckpt = path.parent / "run" / "model.pt"
    assert cli_main(["export", "--ckpt", str(ckpt), "--out", str(out), "--dtype", "bf16"]) == 0
    sd = torch.load(out, map_location="cpu", weights_only=True)
    assert sd["blocks.0.att.key.weight"].dtype == torch.bfloat16
    assert sd["blocks.0.att.time_decay"].dtype == torch.float32


def test_export_refuses_gpt_and_bad_names(tmp_path, capsys):
    gpt = build_model("gpt", vocab_size=V, n_layer=1, n_embd=8, n_head=2, ctx_len=8)
    save_model(tmp_path / "gpt.pt", gpt, {})
    ckpt, out = str(tmp_path / "gpt.pt"), tmp_path / "x.pth"
    assert cli_main(["export", "--ckpt", ckpt, "--out", str(out)]) == 1
    assert "only RWKV models" in capsys.readouterr().err
    assert cli_main(["export", "--ckpt", ckpt, "--out", str(tmp_path / "x.bin")]) == 1
    assert ".pth" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt.pt"]
