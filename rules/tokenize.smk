# rules/tokenize.smk: filled in by its stage (see docs/architecture.md).
