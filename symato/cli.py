"""The ``symato`` command-line tool: one subcommand per pipeline step.

Snakemake rules call these from ``shell:`` so each step is a plain process with its
settings on the command line. Subcommand modules are imported lazily: ``symato encode``
must not pay for importing torch.

Each entry maps a command name to ``module:function``; the function takes the remaining
argv (``list[str]``), parses it with its own argparse parser (``prog="symato NAME"``)
and returns an exit code. A pipeline step's command is named after its module
(``symato tokenize`` is ``symato/data/tokenize.py``); a module with several steps adds a
second word (``symato stats merge``).
"""

from __future__ import annotations

import importlib
import sys

from symato.errors import SymatoError

COMMANDS: dict[str, tuple[str, str]] = {
    # the tokenizer (symato/text/)
    "encode": ("symato.text.cli:encode_main", "encode stdin to token ids or pieces"),
    "decode": ("symato.text.cli:decode_main", "decode token ids from stdin to text"),
    "vocab-info": ("symato.text.cli:vocab_info_main", "describe a vocabulary file"),
    "vocab": ("symato.text.vocab:main", "build one vocabulary"),
    # the data stages (symato/data/)
    "demo": ("symato.data.demo:main", "assemble the built-in demo corpus"),
    "corpus": ("symato.data.corpus:main", "read a configured source into raw shards"),
    "clean": ("symato.data.clean:main", "clean raw shards: filter | dedup | write"),
    "clean report": ("symato.data.clean:report_main", "merge per-shard cleaning reports"),
    "stats": ("symato.data.stats:main", "syllable statistics of one cleaned shard"),
    "stats merge": ("symato.data.stats:merge_main", "merge shard statistics, tables, plots"),
    "tokenize": ("symato.data.tokenize:main", "tokenize a cleaned shard into Arrow shards"),
    "tokenize manifest": ("symato.data.tokenize:manifest_main",
                          "write a tokenizer's shard manifest"),
    # the compiled operators (symato/models/ops/)
    "build": ("symato.models.ops.build:main", "build the operators' kernels for one device"),
    # runs (symato/run/)
    "settings": ("symato.run.settings:main", "write one grid run's settings.json"),
    "train": ("symato.run.train:main", "train one run from its settings file"),
    "evaluate": ("symato.run.evaluate:main", "evaluate trained runs (one or a group)"),
    "evaluate unpack": ("symato.run.evalgroup:unpack_main",
                        "write one run's metrics.json from its evaluation group's file"),
    "sweep": ("symato.run.sweep:main",
              "decide a learning-rate sweep: bracketed, or the next rate to run"),
    "sweep final": ("symato.run.sweep:final_main", "write a sweep's final decision"),
    "generate": ("symato.run.generate:generate_main", "sample text from a checkpoint"),
    "restore": ("symato.run.restore:main", "restore Vietnamese diacritics"),
    # models leaving the project (symato/interop/)
    "export": ("symato.interop.export:main",
               "export a checkpoint: rwkv package .pth, or a transformers folder"),
    "lm-eval tasks": ("symato.interop.lm_eval_tasks:main",
                      "write lm-evaluation-harness tasks over the validation text"),
    "lm-eval run": ("symato.interop.lm_eval_run:main",
                    "evaluate an exported model with lm-evaluation-harness"),
    # results (symato/report/)
    "collect": ("symato.report.collect:main", "collect run metrics into one table"),
    "fit": ("symato.report.fit:main", "fit scaling laws to run results"),
    "study": ("symato.report.study:main", "tokenizer study: fits in bytes of text, crossovers"),
    "transfer-fit": ("symato.report.transfer:main", "transfer study: D_T = k D_F^a N^b, intervals"),
    # the figures and results/summary.md: workflow/scripts/, run by rules/report.smk
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
    if " ".join(args[:2]) in COMMANDS:  # a two-word command: `symato stats merge ...`
        name, rest = " ".join(args[:2]), args[2:]
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
