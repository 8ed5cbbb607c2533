"""Which symato models ``transformers`` can hold exactly (torch-free).

Why a module of its own: the workflow decides at parse time which runs the optional
lm-evaluation-harness stage exports (rules/lmeval.smk), and the Snakefile must not import
torch; the export itself (``symato.interop.weights.mapping_for``) asks the same function,
so the two cannot disagree.
"""

from __future__ import annotations

# Architectures with no exact ``transformers`` class, and where their models go instead.
UNSUPPORTED: dict[str, str] = {
    "rwkv7": (
        "transformers has no RWKV-7 class, and flash-linear-attention's RWKV7ForCausalLM "
        "runs only through Triton GPU kernels (it cannot run a forward pass on a CPU); "
        "export it for the rwkv package instead: symato export --format rwkv "
        "(docs/export.md)"
    ),
}

# The fewest layers a transformers class can be built with. RwkvForCausalLM's weight
# init divides by num_hidden_layers - 1 (transformers 5.25, modeling_rwkv._init_weights),
# so a one-layer RWKV-4 cannot be constructed, even to load weights into.
MIN_LAYERS: dict[str, tuple[int, str]] = {
    "rwkv4": (2, "transformers' RwkvForCausalLM cannot be built with one layer (its weight "
                 "init divides by num_hidden_layers - 1); export it for the rwkv package "
                 "instead: symato export --format rwkv"),
}


def hf_blocker(arch: str, n_layer: int | None = None) -> str | None:
    """Why a model of ``arch`` (today's name) with ``n_layer`` layers cannot be exported
    to ``transformers``, or None when it can."""
    if arch in UNSUPPORTED:
        return UNSUPPORTED[arch]
    least, why = MIN_LAYERS.get(arch, (1, ""))
    if n_layer is not None and n_layer < least:
        return f"{n_layer} layer(s): {why}"
    return None
