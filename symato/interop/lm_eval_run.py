"""Run lm-evaluation-harness on an exported model over the project's tasks:
``symato lm-eval run --model HFDIR --tasks-dir TASKDIR --out results.json``.

Why a command of our own beside plain ``lm_eval``: the workflow needs one small JSON per
run with fixed keys (what ``symato collect`` puts in ``runs.csv``), written atomically,
from a fixed setup (the ``hf`` model in float32 on the CPU, the task folder checked
against its manifest). It calls ``lm_eval.simple_evaluate`` with the same model and tasks
as the plain command (docs/export.md), so both give the same numbers::

    lm_eval --model hf --model_args pretrained=HFDIR,trust_remote_code=True,dtype=float32 \\
        --device cpu --include_path TASKDIR --tasks symato_vi_ppl,symato_vi_restore

``trust_remote_code`` is needed for the symato tokenizer kinds, which ship their
tokenizer as code in the exported folder.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from symato.errors import SymatoError
from symato.interop.lm_eval_tasks import PPL_TASK, RESTORE_TASK, TASKS, check_tasks
from symato.io import write_json_atomic

# Per task, the metrics kept in the compact JSON (lm-eval reports them as "NAME,none").
METRICS = {
    PPL_TASK: ("bits_per_byte", "byte_perplexity", "word_perplexity"),
    RESTORE_TASK: ("acc", "acc_norm"),
}
FILTER = "none"  # lm-eval's key suffix for unfiltered results


def _import_lm_eval() -> Any:
    """lm_eval, or an error naming the extra that installs it (accelerate too: the
    harness's ``hf`` model imports it)."""
    from symato.interop.deps import require

    require("accelerate")
    require("lm_eval.evaluator")  # simple_evaluate
    require("lm_eval.tasks")  # TaskManager
    return require("lm_eval")


def model_args(model_dir: Path, *, max_length: int | None = None,
               batch_size: int = 1) -> dict[str, Any]:
    """The ``hf`` model's arguments: the exported folder, its code trusted (symato
    tokenizers ship as code), float32 on the CPU (the pipeline evaluates in float32)."""
    args: dict[str, Any] = {"pretrained": str(model_dir), "trust_remote_code": True,
                            "dtype": "float32", "device": "cpu", "batch_size": batch_size}
    if max_length is not None:
        args["max_length"] = max_length
    return args


def _number(value: Any, where: str) -> float | None:
    """A metric value as a float; lm-eval's "N/A" (no stderr) as None; non-finite refused."""
    if value is None or value == "N/A":
        return None
    x = float(value)
    if not math.isfinite(x):
        raise SymatoError(f"lm-eval gave a non-finite {where} ({value}): the model is "
                          "numerically broken or the task has no scorable text")
    return x


def compact(results: dict[str, Any], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """Per task: each metric, its stderr (None where lm-eval gives none: the weighted
    perplexity metrics have no closed form and are not bootstrapped), and the number of
    documents scored."""
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        got = results.get("results", {}).get(task)
        if got is None:
            raise SymatoError(f"lm-eval returned no results for task {task!r}")
        row: dict[str, Any] = {}
        for metric in METRICS[task]:
            row[metric] = _number(got.get(f"{metric},{FILTER}"), f"{task} {metric}")
            row[f"{metric}_stderr"] = _number(got.get(f"{metric}_stderr,{FILTER}"),
                                              f"{task} {metric} stderr")
        samples = results.get("n-samples", {}).get(task, {})
        row["documents"] = samples.get("effective")
        out[task] = row
    return out


def run_lm_eval(model_dir: Path, task_dir: Path, *, tasks: list[str] | None = None,
                limit: int | None = None, max_length: int | None = None,
                batch_size: int = 1, threads: int = 1) -> dict[str, Any]:
    """Evaluate the exported model in ``model_dir`` on the tasks of ``task_dir``; return
    the compact result (per task metrics, lm-eval's version, the model and task folders)."""
    tasks = list(tasks or TASKS)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SymatoError(f"lm-eval run: unknown task(s) {unknown}; known: {list(TASKS)}")
    if not (Path(model_dir) / "config.json").is_file():
        raise SymatoError(f"lm-eval run: {model_dir} has no config.json: not an exported "
                          "model folder (symato export --format hf --ckpt RUN --out DIR)")
    manifest = check_tasks(task_dir)
    lm_eval = _import_lm_eval()
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(**model_args(model_dir, max_length=max_length, batch_size=batch_size))
    try:
        results = lm_eval.evaluator.simple_evaluate(
            model=lm, tasks=tasks,
            task_manager=lm_eval.tasks.TaskManager(include_path=str(task_dir)),
            limit=limit, log_samples=False, verbosity="WARNING",
            # acc's stderr has a closed form; the weighted perplexities are never
            # bootstrapped by the harness (no stderr), so no bootstrap draw is made
            bootstrap_iters=100)
    except AssertionError as exc:  # the harness's only check of a choice's length
        raise SymatoError(
            f"lm-eval refused a request of {task_dir} for {model_dir} ({exc or 'assertion'}): "
            "most likely a restoration choice longer than the model's window; rewrite the "
            "tasks with a smaller `symato lm-eval tasks --max-bytes`") from None
    if results is None:  # only on non-zero ranks of a distributed run
        raise SymatoError("lm-eval returned no results")
    return {
        "model": str(Path(model_dir).resolve()),
        "tasks_dir": str(Path(task_dir).resolve()),
        "tasks_sources": manifest.get("sources"),
        "lm_eval_version": lm_eval.__version__,
        "limit": limit,
        # what the harness resolved: its rolling window and the token before a document
        "max_length": int(lm.max_length),
        "prefix_token_id": int(lm.prefix_token_id),
        "seconds": round(time.perf_counter() - start, 2),
        "tasks": compact(results, tasks),
    }


def main(argv: list[str]) -> int:
    """``symato lm-eval run``: evaluate an exported model, write the compact JSON."""
    p = argparse.ArgumentParser(prog="symato lm-eval run", description=(
        "Evaluate an exported model (symato export --format hf) with lm-evaluation-"
        "harness on the tasks of `symato lm-eval tasks`."))
    p.add_argument("--model", required=True, type=Path, help="exported Hugging Face folder")
    p.add_argument("--tasks-dir", required=True, type=Path, help="folder of symato lm-eval tasks")
    p.add_argument("--out", required=True, type=Path, help="compact results JSON to write")
    p.add_argument("--task", action="append", choices=TASKS,
                   help="run only this task (repeatable; default: all)")
    p.add_argument("--limit", type=int, default=None,
                   help="score only the first N documents/items of each task")
    p.add_argument("--max-length", type=int, default=None,
                   help="lm-eval's window in tokens (default: from the model's config)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    out = run_lm_eval(args.model, args.tasks_dir, tasks=args.task, limit=args.limit,
                      max_length=args.max_length, batch_size=args.batch_size,
                      threads=args.threads)
    write_json_atomic(args.out, out)
    summary = ", ".join(f"{t}: " + " ".join(f"{k}={v:.4g}" for k, v in row.items()
                                            if k in METRICS[t] and v is not None)
                        for t, row in out["tasks"].items())
    print(f"symato lm-eval run: {args.out}: {summary}")
    return 0
