"""``symato export`` of an RWKV-7 model writes a file the real ``rwkv`` package loads with
``RWKV_V7_ON=1``, and that runtime computes the same logits as our model.

The runtime is run in a subprocess: ``RWKV_V7_ON`` must be set before ``rwkv.model`` is
first imported and then replaces its RWKV class for the whole process, which would
break the RWKV-4 export tests in the same session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from symato.cli import main as cli_main
from symato.models import build_model
from symato.run.checkpoint import save_model

V = 41
TOKENS = [5, 0, 17, 40, 3, 3, 22, 9]
SEQ = 5  # the runtime's sequence mode for the first SEQ tokens, then its RNN mode

RUNTIME = """
import json, os, sys
os.environ.update(RWKV_V7_ON="1", RWKV_JIT_ON="0", RWKV_CUDA_ON="0")
from rwkv.model import RWKV
path, tokens, seq = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
model = RWKV(path, strategy="cpu fp32")
out, state = model.forward(tokens[:seq], None, full_output=True)
rows = out.tolist()
for t in tokens[seq:]:
    logits, state = model.forward([t], state)
    rows.append(logits.tolist())
print("LOGITS " + json.dumps({"rows": rows, "head_size": model.head_size}))
"""


def run_runtime(pth: os.PathLike[str]) -> tuple[torch.Tensor, int]:
    """Logits of the ``rwkv`` package (sequence then RNN mode) and the head size it read."""
    stem = str(pth)[: -len(".pth")]  # the runtime opens MODEL + ".pth"
    proc = subprocess.run([sys.executable, "-c", RUNTIME, stem, json.dumps(TOKENS), str(SEQ)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOGITS "))
    data = json.loads(line[len("LOGITS ") :])
    return torch.tensor(data["rows"]), data["head_size"]


def exported_model(tmp_path, n_layer: int, n_embd: int, head_size: int, dtype: str = "fp32"):
    """A random-weight RWKV-7 saved as a checkpoint and exported with the CLI."""
    torch.manual_seed(0)
    model = build_model("rwkv7", vocab_size=V, n_layer=n_layer, n_embd=n_embd,
                        n_head=n_embd // head_size, ctx_len=16, wkv_backend="torch")  # fmt: skip
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random everywhere, including the zero-inited matrices and LoRAs
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    save_model(tmp_path / "run" / "model.pt", model, {"run": "x"})
    out = tmp_path / f"model-{dtype}.pth"
    argv = ["export", "--ckpt", str(tmp_path / "run"), "--out", str(out), "--dtype", dtype]
    assert cli_main(argv) == 0
    return model.eval(), out


@pytest.mark.parametrize(("n_layer", "n_embd", "head_size"), [(3, 32, 16), (2, 128, 64)])
def test_rwkv_package_matches_our_logits(tmp_path, n_layer, n_embd, head_size):
    model, path = exported_model(tmp_path, n_layer, n_embd, head_size)
    theirs, their_head_size = run_runtime(path)
    assert their_head_size == head_size  # read from blocks.0.att.r_k, not hard-coded
    with torch.no_grad():
        ours = model(torch.tensor([TOKENS]))[0]
    torch.testing.assert_close(theirs, ours, atol=2e-5, rtol=1e-5)
    assert ours.abs().max() > 1  # non-trivial logits


def test_export_file_is_the_plain_x070_state_dict(tmp_path):
    model, path = exported_model(tmp_path, 2, 32, 16)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert set(sd) == set(model.state_dict())
    # v rank: the authors' floor 32 at C = 32 (issue #22; was the capped 8)
    assert "blocks.0.att.v1" not in sd and sd["blocks.1.att.v1"].shape == (32, 32)
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in sd.values())
    torch.testing.assert_close(sd["blocks.1.att.w0"], model.blocks[1].att.w0.detach())


def test_bf16_export_loads_and_matches_the_rounded_model(tmp_path):
    _, path = exported_model(tmp_path, 2, 32, 16, dtype="bf16")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert all(t.dtype == torch.bfloat16 for t in sd.values())
    rounded = build_model("rwkv7", vocab_size=V, n_layer=2, n_embd=32, n_head=2, ctx_len=16,
                          wkv_backend="torch")  # fmt: skip
    rounded.load_state_dict({k: v.float() for k, v in sd.items()})
    theirs, _ = run_runtime(path)
    with torch.no_grad():
        ours = rounded.eval()(torch.tensor([TOKENS]))[0]
    torch.testing.assert_close(theirs, ours, atol=2e-5, rtol=1e-5)
