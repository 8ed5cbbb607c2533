"""The ``symato`` command-line tool: one subcommand per pipeline step.

Snakemake rules call these from ``shell:`` so each step is a plain process with its
settings on the command line. Subcommand modules are imported lazily: ``symato encode``
must not pay for importing torch.

Each entry maps a command name to ``module:function``; the function takes the remaining
argv (``list[str]``), parses it with its own argparse parser (``prog="symato NAME"``)
and returns an exit code.
"""

from __future__ import annotations

import importlib
import sys

from symato.errors import SymatoError

COMMANDS: dict[str, tuple[str, str]] = {
    # tokenizer (issue 2)
    "encode": ("symato.tokenizer_cli:encode_main", "encode stdin to token ids or pieces"),
    "decode": ("symato.tokenizer_cli:decode_main", "decode token ids from stdin to text"),
    "vocab-info": ("symato.tokenizer_cli:vocab_info_main", "describe a vocabulary file"),
    # data stages (issue 3)
    "demo-corpus": ("symato.demo:main", "assemble the built-in demo corpus"),
    "shard": ("symato.corpus:main", "read a configured source and split it into shards"),
    "clean": ("symato.clean:main", "clean raw shards into Parquet + a report"),
    "clean-report": ("symato.clean:merge_main", "merge per-shard cleaning reports"),
    "stats": ("symato.stats:main", "syllable statistics of one cleaned shard"),
    "stats-merge": ("symato.stats:merge_main", "merge shard statistics, tables, plots"),
    "vocab": ("symato.vocab:main", "build one vocabulary"),
    "tokenize": ("symato.shards:main", "tokenize cleaned shards into Arrow shards"),
    "shards-manifest": ("symato.shards:manifest_main", "write a tokenizer's shard manifest"),
    # models (issue 4)
    "export": ("symato.export:main", "export an RWKV-4 or RWKV-7 checkpoint for the rwkv package"),
    "generate": ("symato.generate:generate_main", "sample text from a checkpoint"),
    "restore": ("symato.generate:restore_main", "restore Vietnamese diacritics"),
    # training and evaluation (issue 5)
    "train": ("symato.train:main", "train one run from its settings file"),
    "evaluate": ("symato.evaluate:main", "evaluate a trained run"),
    "run-settings": ("symato.grid:settings_main", "write one grid run's settings.json"),
    # scaling and report (issue 6)
    "fit": ("symato.scaling:main", "fit scaling laws to run results"),
    "collect": ("symato.collect:main", "collect run metrics into one table"),
    "plot": ("symato.plots:main", "draw the report's figures"),
    "summary": ("symato.summary:main", "write results/summary.md"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: symato COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run 'symato COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; a ``SymatoError`` becomes one clean line on stderr."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from symato import __version__

        print(f"symato {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"symato: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except SymatoError as exc:
        print(f"symato {name}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `symato encode | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
