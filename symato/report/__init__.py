"""After the runs: the results tables (``collect``), scaling-law fits (``fit``: the
command, per group of runs; ``laws``: the laws and their fit; ``lrchoice``: which run of
a learning-rate sweep is fitted; ``tables``: runs.csv in, the parameter table out), the
tokenizer study (``study``), the data behind each figure (``figures``; the drawing itself
is in the workflow's ``workflow/scripts/``) and the Markdown summary (``summary``).
"""
