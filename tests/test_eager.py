"""Lean job processes: eager runs skip torch's dynamo import (symato.run.eager) and the
token loader pyarrow's pandas import, and neither changes a number.

Why these tests: the saving (1.5-2 s per training or evaluation job on the demo machine)
relies on torch internals; on the pinned torch they must hold, and the optimizer must
stay bit-for-bit torch's AdamW, or the speed-up would silently change results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from _kernels import require_toolchain
from _train_fixtures import make_settings

from symato.data.loader import _numpy_view
from symato.run.eager import AdamW

ROOT = Path(__file__).resolve().parents[1]


def _params(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in ((7, 5), (5,))]


def _train(opt_class: type, fused: bool, steps: int = 4) -> tuple[list[torch.Tensor], dict]:
    params = _params(0)
    groups = [{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:],
                                                            "weight_decay": 0.0}]
    opt = opt_class(groups, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in params], opt.state_dict()


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_equals_torch_bit_for_bit(fused: bool) -> None:
    ours, our_state = _train(AdamW, fused)
    theirs, their_state = _train(torch.optim.AdamW, fused)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert our_state["param_groups"] == their_state["param_groups"]
    for key, state in their_state["state"].items():
        assert all(torch.equal(state[k], our_state["state"][key][k]) for k in state)


def test_adamw_state_dict_round_trip_resumes_identically() -> None:
    """A checkpoint of ours loads into ours and continues exactly as torch's would."""
    params, state = _train(AdamW, True, steps=2)
    twin = [torch.nn.Parameter(p.clone()) for p in params]
    opt = AdamW([{"params": twin[:1], "weight_decay": 0.1},
                 {"params": twin[1:], "weight_decay": 0.0}], lr=1e-2, fused=True)
    opt.load_state_dict(state)
    assert opt.state_dict()["state"][0]["step"] == state["state"][0]["step"]


def test_adamw_refuses_differentiable() -> None:
    with pytest.raises(ValueError, match="differentiable"):
        AdamW(_params(0), differentiable=True)


_RUN = """
import json, sys
from symato.run.train import main
code = main(["--settings", sys.argv[1], "--out", sys.argv[2]])
print(json.dumps({"code": code, "dynamo": "torch._dynamo" in sys.modules,
                  "pandas": "pandas" in sys.modules}))
"""


def test_training_run_does_not_import_dynamo(tmp_path: Path) -> None:
    """An RWKV run (optimizer and the compiled WKV operator) on CPU, in a fresh process."""
    require_toolchain("cpu")
    settings = make_settings(tmp_path, arch="rwkv4", run="rwkv4-L1-D16-T10k", head_size=16,
                             wkv_backend="cpu", steps=6, eval_interval=3)
    result = subprocess.run([sys.executable, "-c", _RUN, str(settings), str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "dynamo": False, "pandas": False}


def test_numpy_view_equals_pyarrow_on_sliced_lists() -> None:
    """The loader's view of a list column's values (offsets and slices included)."""
    lists = pa.array([[1, 2, 3], [4], [], [5, 6, 7, 8]], type=pa.list_(pa.uint16()))
    for values in (lists.flatten(), lists.slice(1, 3).flatten(), lists.slice(3).flatten()):
        ours = _numpy_view(values)
        assert ours.dtype == values.to_numpy(zero_copy_only=True).dtype
        assert ours.tolist() == values.to_pylist()
    with pytest.raises(pa.ArrowInvalid, match="null"):
        _numpy_view(pa.array([1, None], type=pa.int32()))
