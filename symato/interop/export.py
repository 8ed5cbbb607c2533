"""``symato export``: a trained checkpoint in a format other tools load.

``--format rwkv`` (the default, as before the option existed): an RWKV-4 or RWKV-7
``.pth`` for the ``rwkv`` package (``symato.interop.rwkv_pth``). ``--format hf``: a
folder for Hugging Face ``transformers`` (``symato.interop.hf_export``; RWKV-4, GPT and
Transformer++). docs/export.md describes both.
"""

from __future__ import annotations

import argparse

DTYPE_CHOICES = ("bf16", "fp16", "fp32")


def main(argv: list[str]) -> int:
    """``symato export [--format rwkv|hf] --ckpt PATH --out FILE.pth|DIR [--dtype ...]``."""
    parser = argparse.ArgumentParser(
        prog="symato export",
        description="Export a checkpoint: --format rwkv writes an RWKV-4/RWKV-7 .pth for the "
        "rwkv package; --format hf writes a folder transformers loads "
        "(AutoModelForCausalLM.from_pretrained), with tokenizer and model card.",
    )
    parser.add_argument("--format", default="rwkv", choices=("rwkv", "hf"),
                        help="rwkv: .pth file for the rwkv package (default); hf: transformers "
                        "folder")
    parser.add_argument("--ckpt", required=True, help="checkpoint file or run directory")
    parser.add_argument("--out", required=True,
                        help="output: a .pth file (rwkv) or a folder (hf)")
    parser.add_argument("--dtype", default="fp32", choices=DTYPE_CHOICES, help="weight dtype")
    parser.add_argument("--vocab", default=None,
                        help="hf: the vocabulary file, if not the copy in the checkpoint")
    args = parser.parse_args(argv)
    if args.format == "rwkv":
        from symato.interop.rwkv_pth import export_rwkv

        n = export_rwkv(args.ckpt, args.out, args.dtype)
        print(f"wrote {n} tensors to {args.out}")
        return 0
    from symato.interop.hf_export import export_hf

    info = export_hf(args.ckpt, args.out, dtype=args.dtype, vocab=args.vocab)
    tok = info["tokenizer"]
    print(f"wrote {info['hf_class']} ({info['tensors']} tensors, {info['dtype']}) and "
          f"{tok['tokenizer_class'] if tok else 'no tokenizer'} to {args.out}")
    return 0
