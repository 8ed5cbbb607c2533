"""One weight mapping per architecture between symato and Hugging Face ``transformers``.

Why data, not code: export (symato -> transformers) and import (a ``transformers``
checkpoint -> symato, issue #25) must agree tensor by tensor, and two hand-written
functions drift apart. Each architecture is one ``HFMapping``: the ``transformers``
class it becomes, config keys (renamed, derived, or fixed) and tensor rules (a name
pattern on each side plus a transform and its inverse). ``to_hf`` and ``from_hf`` both
walk the same table, so a rule added or changed is changed both ways, and
``tests/test_hf_export.py`` checks that ``from_hf(to_hf(x)) == x`` for every entry.

Exactness, per architecture (each checked by logits in tests/test_hf_export.py):

* ``rwkv4`` -> ``RwkvForCausalLM``: the same names up to renaming, ``time_decay`` raw in
  both (both compute ``w = -exp(time_decay)``), ``ln0`` is HF's ``pre_ln``, LayerNorm eps
  1e-5. ``rescale_every`` is exported as 0: with it HF halves the hidden state every few
  blocks at inference and rescales ``attention.output``/``feed_forward.value`` to match,
  which is exact only in infinite precision and changes fp16 results.
* ``llama`` -> ``LlamaForCausalLM``: our RoPE already is HF's "rotate half" layout (pair
  ``i`` with ``i + head_dim/2``, ``base^(-2i/head_dim)``), so q and k rows are copied, not
  permuted; RMSNorm eps and base are carried; no biases; untied head.
* ``gpt`` -> ``GPT2LMHeadModel``: HF's ``Conv1D`` stores ``(in, out)``, so every linear
  weight is transposed; ours has no linear biases, HF's always has them: they are
  exported as zeros and must be zero on import (else the model is not ours); exact GELU
  (``activation_function: gelu``, not GPT-2's tanh ``gelu_new``); learned positions
  ``n_positions = ctx_len``; the optional tied head is ``tie_word_embeddings``.
* ``rwkv7``: ``transformers`` has no RWKV-7 class (``symato.interop.support`` says where to go).

Only torch is needed here; ``read_hf_folder`` imports ``transformers`` and
``safetensors`` when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from symato.errors import SymatoError
from symato.interop.support import hf_blocker


@dataclass(frozen=True)
class Transform:
    """How one tensor changes on the way to ``transformers`` (``to_hf``) and back
    (``from_hf``); the two must be inverses (tested)."""

    name: str
    to_hf: Callable[[Tensor], Tensor]
    from_hf: Callable[[Tensor], Tensor]


IDENTITY = Transform("identity", lambda t: t, lambda t: t)
TRANSPOSE = Transform("transpose", lambda t: t.t(), lambda t: t.t())  # HF Conv1D: (in, out)


@dataclass(frozen=True)
class TensorRule:
    """One tensor on both sides. ``{i}`` in a pattern is the layer index (the rule then
    applies to every layer; ``layers`` narrows it, e.g. to layer 0 only).

    ``ours`` None: a tensor ``transformers`` has and symato has not (GPT-2's linear
    biases): exported as zeros of the last dimension of HF tensor ``zeros_like``, and on
    import required to be zero, since a non-zero one is a model symato cannot represent.
    """

    ours: str | None
    theirs: str
    transform: Transform = IDENTITY
    layers: str = "all"  # "all" or "first"
    zeros_like: str | None = None
    keep_fp32: bool = False  # stays float32 whatever the export dtype (RWKV decays)

    def names(self, n_layer: int) -> list[tuple[int, str | None, str]]:
        """(layer, ours, theirs) for every layer this rule covers (one triple, layer 0,
        if it has no ``{i}``)."""
        layers = [0] if "{i}" not in self.theirs or self.layers == "first" else range(n_layer)
        return [(i, None if self.ours is None else self.ours.format(i=i), self.theirs.format(i=i))
                for i in layers]


@dataclass(frozen=True)
class ConfigKey:
    """One key of the ``transformers`` config (dotted for nested dicts: ``a.b``).

    Exactly one source: ``ours`` (a key of symato's config, renamed), ``derived`` (a
    function of symato's config: checked on import against what the file says), or
    ``fixed`` (a constant: exported, and on import the file must have it unless
    ``check`` is False). ``none_means``: the value ``transformers`` reads a None as
    (GPT-2's ``n_inner`` None is 4 x width).
    """

    theirs: str
    ours: str | None = None
    derived: Callable[[dict[str, Any]], Any] | None = None
    fixed: Any = None
    check: bool = True
    none_means: Callable[[dict[str, Any]], Any] | None = None


@dataclass(frozen=True)
class HFMapping:
    """An architecture as a ``transformers`` class: config keys and tensor rules.

    ``runtime_keys``: keys of symato's config that are not part of the model function
    (the operator backend, init scales) and so have no ``transformers`` counterpart; any
    other key of symato's config missing from ``config`` is an error, so a new model
    option cannot be dropped silently by export. ``tie``: (our head, our embedding, our
    config flag) when the head may share the embedding matrix.
    """

    arch: str
    hf_class: str
    model_type: str
    config: tuple[ConfigKey, ...]
    tensors: tuple[TensorRule, ...]
    runtime_keys: tuple[str, ...] = ()
    tie: tuple[str, str, str] | None = None


# --------------------------------------------------------------------------- the table

RWKV4 = HFMapping(
    arch="rwkv4",
    hf_class="RwkvForCausalLM",
    model_type="rwkv",
    config=(
        ConfigKey("vocab_size", ours="vocab_size"),
        ConfigKey("num_hidden_layers", ours="n_layer"),
        ConfigKey("hidden_size", ours="n_embd"),
        ConfigKey("context_length", ours="ctx_len"),
        ConfigKey("attention_hidden_size", derived=lambda c: c["n_embd"]),
        ConfigKey("intermediate_size", derived=lambda c: 4 * c["n_embd"]),
        ConfigKey("layer_norm_epsilon", fixed=1e-5),  # torch's LayerNorm default, ours
        ConfigKey("tie_word_embeddings", fixed=False),
        # Weights on disk are never rescaled; HF rescales in memory at eval, so a file's
        # value does not change the function (not checked on import).
        ConfigKey("rescale_every", fixed=0, check=False),
    ),
    tensors=(
        TensorRule("emb.weight", "rwkv.embeddings.weight"),
        TensorRule("blocks.{i}.ln0.weight", "rwkv.blocks.{i}.pre_ln.weight", layers="first"),
        TensorRule("blocks.{i}.ln0.bias", "rwkv.blocks.{i}.pre_ln.bias", layers="first"),
        TensorRule("blocks.{i}.ln1.weight", "rwkv.blocks.{i}.ln1.weight"),
        TensorRule("blocks.{i}.ln1.bias", "rwkv.blocks.{i}.ln1.bias"),
        TensorRule("blocks.{i}.ln2.weight", "rwkv.blocks.{i}.ln2.weight"),
        TensorRule("blocks.{i}.ln2.bias", "rwkv.blocks.{i}.ln2.bias"),
        TensorRule("blocks.{i}.att.time_decay", "rwkv.blocks.{i}.attention.time_decay",
                   keep_fp32=True),
        TensorRule("blocks.{i}.att.time_first", "rwkv.blocks.{i}.attention.time_first",
                   keep_fp32=True),
        TensorRule("blocks.{i}.att.time_mix_k", "rwkv.blocks.{i}.attention.time_mix_key"),
        TensorRule("blocks.{i}.att.time_mix_v", "rwkv.blocks.{i}.attention.time_mix_value"),
        TensorRule("blocks.{i}.att.time_mix_r",
                   "rwkv.blocks.{i}.attention.time_mix_receptance"),
        TensorRule("blocks.{i}.att.key.weight", "rwkv.blocks.{i}.attention.key.weight"),
        TensorRule("blocks.{i}.att.value.weight", "rwkv.blocks.{i}.attention.value.weight"),
        TensorRule("blocks.{i}.att.receptance.weight",
                   "rwkv.blocks.{i}.attention.receptance.weight"),
        TensorRule("blocks.{i}.att.output.weight", "rwkv.blocks.{i}.attention.output.weight"),
        TensorRule("blocks.{i}.ffn.time_mix_k", "rwkv.blocks.{i}.feed_forward.time_mix_key"),
        TensorRule("blocks.{i}.ffn.time_mix_r",
                   "rwkv.blocks.{i}.feed_forward.time_mix_receptance"),
        TensorRule("blocks.{i}.ffn.key.weight", "rwkv.blocks.{i}.feed_forward.key.weight"),
        TensorRule("blocks.{i}.ffn.receptance.weight",
                   "rwkv.blocks.{i}.feed_forward.receptance.weight"),
        TensorRule("blocks.{i}.ffn.value.weight", "rwkv.blocks.{i}.feed_forward.value.weight"),
        TensorRule("ln_out.weight", "rwkv.ln_out.weight"),
        TensorRule("ln_out.bias", "rwkv.ln_out.bias"),
        TensorRule("head.weight", "head.weight"),
    ),
    runtime_keys=("wkv_backend", "emb_init"),
)

LLAMA = HFMapping(
    arch="llama",
    hf_class="LlamaForCausalLM",
    model_type="llama",
    config=(
        ConfigKey("vocab_size", ours="vocab_size"),
        ConfigKey("num_hidden_layers", ours="n_layer"),
        ConfigKey("hidden_size", ours="n_embd"),
        ConfigKey("num_attention_heads", ours="n_head"),
        ConfigKey("max_position_embeddings", ours="ctx_len"),
        ConfigKey("rope_parameters.rope_theta", ours="rope_base"),
        ConfigKey("rms_norm_eps", ours="norm_eps"),
        ConfigKey("num_key_value_heads", derived=lambda c: c["n_head"]),  # no GQA
        ConfigKey("head_dim", derived=lambda c: c["n_embd"] // c["n_head"]),
        ConfigKey("intermediate_size", derived=lambda c: 8 * -(-c["n_embd"] // 3)),  # dim_ffn
        ConfigKey("rope_parameters.rope_type", fixed="default"),
        ConfigKey("hidden_act", fixed="silu"),
        ConfigKey("attention_bias", fixed=False),
        ConfigKey("mlp_bias", fixed=False),
        ConfigKey("tie_word_embeddings", fixed=False),
    ),
    tensors=(
        TensorRule("tok_embeddings.weight", "model.embed_tokens.weight"),
        TensorRule("layers.{i}.attention_norm.weight", "model.layers.{i}.input_layernorm.weight"),
        TensorRule("layers.{i}.attention.wq.weight", "model.layers.{i}.self_attn.q_proj.weight"),
        TensorRule("layers.{i}.attention.wk.weight", "model.layers.{i}.self_attn.k_proj.weight"),
        TensorRule("layers.{i}.attention.wv.weight", "model.layers.{i}.self_attn.v_proj.weight"),
        TensorRule("layers.{i}.attention.wo.weight", "model.layers.{i}.self_attn.o_proj.weight"),
        TensorRule("layers.{i}.ffn_norm.weight",
                   "model.layers.{i}.post_attention_layernorm.weight"),
        TensorRule("layers.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.gate_proj.weight"),
        TensorRule("layers.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.up_proj.weight"),
        TensorRule("layers.{i}.feed_forward.w2.weight", "model.layers.{i}.mlp.down_proj.weight"),
        TensorRule("norm.weight", "model.norm.weight"),
        TensorRule("output.weight", "lm_head.weight"),
    ),
)

_GPT_LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")

GPT = HFMapping(
    arch="gpt",
    hf_class="GPT2LMHeadModel",
    model_type="gpt2",
    config=(
        ConfigKey("vocab_size", ours="vocab_size"),
        ConfigKey("n_layer", ours="n_layer"),
        ConfigKey("n_embd", ours="n_embd"),
        ConfigKey("n_head", ours="n_head"),
        ConfigKey("n_positions", ours="ctx_len"),
        ConfigKey("tie_word_embeddings", ours="tie_weights"),
        ConfigKey("n_inner", derived=lambda c: 4 * c["n_embd"],
                  none_means=lambda c: 4 * c["n_embd"]),
        ConfigKey("activation_function", fixed="gelu"),  # torch's exact (erf) GELU
        ConfigKey("layer_norm_epsilon", fixed=1e-5),
        ConfigKey("scale_attn_weights", fixed=True),
        ConfigKey("scale_attn_by_inverse_layer_idx", fixed=False),
        ConfigKey("add_cross_attention", fixed=False),
    ),
    tensors=(
        TensorRule("wte.weight", "transformer.wte.weight"),
        TensorRule("wpe.weight", "transformer.wpe.weight"),
        TensorRule("blocks.{i}.ln_1.weight", "transformer.h.{i}.ln_1.weight"),
        TensorRule("blocks.{i}.ln_1.bias", "transformer.h.{i}.ln_1.bias"),
        TensorRule("blocks.{i}.ln_2.weight", "transformer.h.{i}.ln_2.weight"),
        TensorRule("blocks.{i}.ln_2.bias", "transformer.h.{i}.ln_2.bias"),
        *(TensorRule(f"blocks.{{i}}.{m}.weight", f"transformer.h.{{i}}.{m}.weight", TRANSPOSE)
          for m in _GPT_LINEARS),
        *(TensorRule(None, f"transformer.h.{{i}}.{m}.bias",
                     zeros_like=f"transformer.h.{{i}}.{m}.weight") for m in _GPT_LINEARS),
        TensorRule("ln_f.weight", "transformer.ln_f.weight"),
        TensorRule("ln_f.bias", "transformer.ln_f.bias"),
        TensorRule("head.weight", "lm_head.weight"),
    ),
    tie=("head.weight", "wte.weight", "tie_weights"),
)

MAPPINGS: dict[str, HFMapping] = {m.arch: m for m in (RWKV4, LLAMA, GPT)}



def mapping_for(arch: str) -> HFMapping:
    """The mapping of symato architecture ``arch`` (old names such as ``rwkv`` allowed)."""
    from symato.models.registry import get_architecture

    name = get_architecture(arch).name
    blocker = hf_blocker(name)
    if blocker:
        raise SymatoError(f"architecture {name!r} cannot be exported to transformers: "
                          f"{blocker}")
    if name not in MAPPINGS:
        raise SymatoError(f"architecture {name!r} has no transformers mapping "
                          f"(symato/interop/weights.py MAPPINGS)")
    return MAPPINGS[name]


def mapping_for_hf(hf_config: dict[str, Any]) -> HFMapping:
    """The mapping whose ``transformers`` model type ``hf_config`` has."""
    model_type = hf_config.get("model_type")
    for m in MAPPINGS.values():
        if m.model_type == model_type:
            return m
    known = sorted(m.model_type for m in MAPPINGS.values())
    raise SymatoError(f"transformers model_type {model_type!r} has no symato architecture "
                      f"(known: {known})")


# --------------------------------------------------------------------------- config


def _get(d: dict[str, Any], dotted: str) -> Any:
    """``d[a][b]`` for ``"a.b"``; KeyError when a level is missing."""
    for part in dotted.split("."):
        if not isinstance(d, dict):
            raise KeyError(dotted)
        d = d[part]
    return d


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        d = d.setdefault(part, {})
    d[last] = value


def config_to_hf(m: HFMapping, ours: dict[str, Any]) -> dict[str, Any]:
    """The ``transformers`` config keys of symato config ``ours`` (plus ``model_type``
    and ``architectures``); an option of ours the mapping does not know is an error."""
    covered = {k.ours for k in m.config if k.ours} | set(m.runtime_keys)
    unknown = sorted(set(ours) - covered)
    if unknown:
        raise SymatoError(f"{m.arch} config keys {unknown} have no transformers counterpart "
                          f"(symato/interop/weights.py {m.arch} mapping)")
    hf: dict[str, Any] = {"model_type": m.model_type, "architectures": [m.hf_class]}
    for key in m.config:
        if key.ours is not None:
            value = ours[key.ours]
        elif key.derived is not None:
            value = key.derived(ours)
        else:
            value = key.fixed
        _set(hf, key.theirs, value)
    return hf


def config_from_hf(m: HFMapping, hf: dict[str, Any], where: str) -> dict[str, Any]:
    """Symato's config for complete ``transformers`` config ``hf`` (``to_dict()``), after
    checking every derived and fixed key: a value symato's model cannot reproduce is an
    error naming the key."""
    ours: dict[str, Any] = {}
    for key in m.config:
        if key.ours is None:
            continue
        try:
            ours[key.ours] = _get(hf, key.theirs)
        except KeyError:
            raise SymatoError(f"{where}: config key {key.theirs!r} missing") from None
    for key in m.config:
        if key.ours is not None or not key.check:
            continue
        want = key.derived(ours) if key.derived is not None else key.fixed
        try:
            have = _get(hf, key.theirs)
        except KeyError:
            raise SymatoError(f"{where}: config key {key.theirs!r} missing "
                              f"(symato's {m.arch} needs {want!r})") from None
        if have is None and key.none_means is not None:
            have = key.none_means(ours)
        if have != want:
            raise SymatoError(f"{where}: config key {key.theirs!r} is {have!r}; symato's "
                              f"{m.arch} can only represent {want!r}")
    return ours


# --------------------------------------------------------------------------- tensors


def to_hf(arch: str, config: dict[str, Any], state: dict[str, Tensor],
          dtype: torch.dtype = torch.float32) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(hf_state, hf_config)`` of a symato model (``config_dict``, ``state_dict``).

    Tensors are new contiguous CPU copies in ``dtype`` (RWKV decays stay float32); every
    tensor of ``state`` must be used by exactly one rule. A tied head is not written
    (``transformers`` ties it from ``tie_word_embeddings``).
    """
    m = mapping_for(arch)
    hf_config = config_to_hf(m, config)
    n_layer = int(config["n_layer"])
    tied = m.tie is not None and bool(config.get(m.tie[2]))
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    for rule in m.tensors:
        for _, ours, theirs in rule.names(n_layer):
            if ours is None:
                continue
            if ours not in state:
                raise SymatoError(f"{arch} state dict has no tensor {ours!r}")
            used.add(ours)
            if tied and ours == m.tie[0]:
                continue
            keep = torch.float32 if rule.keep_fp32 else dtype
            out[theirs] = rule.transform.to_hf(state[ours].detach()).to("cpu", keep).contiguous()
    for rule in m.tensors:  # HF-only tensors: zeros shaped by the tensor they go with
        for i, ours, theirs in rule.names(n_layer):
            if ours is None and rule.zeros_like is not None:
                out[theirs] = torch.zeros(out[rule.zeros_like.format(i=i)].shape[-1], dtype=dtype)
    extra = sorted(set(state) - used)
    if extra:
        raise SymatoError(f"{arch} state dict tensors {extra[:5]} have no transformers rule "
                          f"(symato/interop/weights.py)")
    return out, hf_config


def from_hf(hf_state: dict[str, Tensor], hf_config: dict[str, Any], where: str = "checkpoint"
            ) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """``(arch, config, state)`` of symato for a ``transformers`` model.

    ``hf_config`` must be complete (``PretrainedConfig.to_dict()``, not ``config.json``,
    which leaves out default values; ``read_hf_folder`` gives it). Every tensor of
    ``hf_state`` must be used; HF-only tensors (GPT-2 biases) must be zero; a tied head
    missing from the file is the embedding. Tensors come back float32 (RWKV decays too).
    """
    m = mapping_for_hf(hf_config)
    config = config_from_hf(m, hf_config, where)
    n_layer = int(config["n_layer"])
    tied = m.tie is not None and bool(config.get(m.tie[2]))
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    for rule in m.tensors:
        for _, ours, theirs in rule.names(n_layer):
            if theirs not in hf_state:
                if tied and ours == m.tie[0]:
                    continue
                raise SymatoError(f"{where}: tensor {theirs!r} missing ({m.hf_class})")
            used.add(theirs)
            tensor = hf_state[theirs].detach().to("cpu", torch.float32)
            if ours is None:
                biggest = float(tensor.abs().max()) if tensor.numel() else 0.0
                if biggest > 0:
                    raise SymatoError(
                        f"{where}: {theirs} is not zero (max |x| = {biggest:.3g}); symato's"
                        f" {m.arch} has no such tensor, so this model cannot be "
                        f"represented exactly")
                continue
            state[ours] = rule.transform.from_hf(tensor).contiguous()
    if tied:
        state[m.tie[0]] = state[m.tie[1]]
    extra = sorted(set(hf_state) - used)
    if extra:
        raise SymatoError(f"{where}: tensors {extra[:5]} are not part of symato's {m.arch} "
                          f"(symato/interop/weights.py)")
    return m.arch, config, state


def read_hf_folder(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(hf_state, complete hf_config)`` of a ``save_pretrained`` folder, read safely
    (safetensors only: a pickled ``pytorch_model.bin`` could run code when loaded)."""
    from symato.interop.deps import require

    folder = Path(path)
    transformers = require("transformers")
    safetensors_torch = require("safetensors.torch")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SymatoError(f"{folder}: no *.safetensors weights (pickled .bin files are not "
                          f"read: loading them could run code)")
    state: dict[str, Tensor] = {}
    for f in files:
        state.update(safetensors_torch.load_file(str(f)))
    config = transformers.AutoConfig.from_pretrained(str(folder)).to_dict()
    return state, config
