# rules/eval.smk: filled in by its stage (see docs/architecture.md).
