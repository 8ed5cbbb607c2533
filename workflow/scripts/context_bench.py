"""Figure context_bench: what a generated token costs, and the memory it needs, as the
context grows, per architecture.

Rule plot_context_bench (rules/bench.smk); edit this file to restyle the figure. The
numbers come from rule context_bench (symato/report/context.py, a short sweep at the
demo's smallest size); benchmarks/bench_context.py draws the same figure at full size.
"""

import json

from symato.report import context, figures

if "snakemake" in globals():  # run by Snakemake
    sm = snakemake
    with figures.logged_to(sm.log[0]):
        with open(sm.input[0], encoding="utf-8") as f:
            bench = json.load(f)
        title = f"{bench['size']}, {bench['tokens']} generated tokens; {bench['machine']}"
        figures.save_figure(context.plot(bench["rows"], title), sm.output.png, sm.output.svg,
                            dpi=sm.params.dpi)
