"""The workflow configuration: checked and completed once, from the schemas.

Why not Snakemake's ``validate``: it fills a default only where the schema states it
inline. It does not follow ``$ref`` into the section files or into ``#/$defs``, and it
cannot know this package's registries. Rules then grew their own fallbacks. Here the
Snakefile calls :func:`prepare` once; afterwards every key of every section is present
and every rule reads ``config[...]`` directly.

The schemas live in ``workflow/schemas/`` (one file per section). Where an allowed value
is a registry of the package (architectures, tokenizer kinds, training settings), the
schema holds a placeholder ``{x-symato-registry: NAME}`` that :func:`load_schema` replaces
with the registry's current entries, so adding an architecture or a tokenizer kind never
means editing a schema.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from symato.errors import SymatoError

REGISTRY_KEY = "x-symato-registry"


def _architectures() -> dict[str, Any]:
    from symato.models.registry import ALIASES, ARCHITECTURES

    return {"enum": [*ARCHITECTURES, *ALIASES]}  # old names: read as today's (prepare)


def _tokenizers() -> dict[str, Any]:
    from symato.text.kinds import name_pattern

    return {"type": "string", "pattern": name_pattern()}


def _train_settings() -> dict[str, Any]:
    from symato.run.settings import shared_schema

    return shared_schema()


def _sentencepiece() -> dict[str, Any]:
    from symato.text.vocab import sentencepiece_schema

    return sentencepiece_schema()


def _varied() -> dict[str, Any]:
    from symato.run.settings import varied_schema

    return varied_schema()


# Placeholder name -> the schema fragment it stands for.
REGISTRIES: dict[str, Callable[[], dict[str, Any]]] = {
    "architectures": _architectures,
    "tokenizers": _tokenizers,
    "train-settings": _train_settings,
    "varied-settings": _varied,
    "sentencepiece-options": _sentencepiece,
}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SymatoError(f"cannot read config schema {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SymatoError(f"config schema {path} is not a mapping")
    return data


def _pointer(document: dict[str, Any], ref: str, path: Path) -> dict[str, Any]:
    node: Any = document
    for part in ref.lstrip("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            raise SymatoError(f"config schema {path}: $ref {ref!r} points nowhere")
        node = node[part]
    return node


def _bundle(node: Any, document: dict[str, Any], path: Path) -> Any:
    """``node`` with every ``$ref`` inlined and every registry placeholder filled."""
    if isinstance(node, list):
        return [_bundle(item, document, path) for item in node]
    if not isinstance(node, dict):
        return node
    if REGISTRY_KEY in node:
        name = node[REGISTRY_KEY]
        if name not in REGISTRIES:
            raise SymatoError(f"config schema {path}: unknown registry {name!r}")
        rest = {k: v for k, v in node.items() if k != REGISTRY_KEY}
        return {**REGISTRIES[name](), **_bundle(rest, document, path)}
    siblings = {k: _bundle(v, document, path) for k, v in node.items()
                if k not in ("$ref", "$defs", "$schema")}
    ref = node.get("$ref")
    if ref is None:
        return siblings
    if ref.startswith("#"):
        target = _bundle(_pointer(document, ref, path), document, path)
    else:
        target_path = (path.parent / ref).resolve()
        target_doc = _read(target_path)
        target = _bundle(target_doc, target_doc, target_path)
    return {**target, **siblings}


def load_schema(path: str | Path) -> dict[str, Any]:
    """The whole config schema as one self-contained mapping (no ``$ref`` left)."""
    path = Path(path).resolve()
    document = _read(path)
    bundled = _bundle(document, document, path)
    bundled["$schema"] = document.get("$schema", "https://json-schema.org/draft/2020-12/schema")
    return bundled


def _where(error: Any) -> str:
    """``train.grids[1].archs[0]`` for a jsonschema error's location."""
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _validator(schema: Any) -> Any:
    """A JSON-schema validator whose ``integer`` excludes floats such as ``128.0``.

    Why: JSON schema counts ``128.0`` as an integer, but the package's settings are
    Python ints (``ctx_len: 128.0`` would pass here and be refused later, blamed on a run
    name instead of the key that holds it).
    """
    return _strict_validator_class()(schema)


@functools.cache
def _strict_validator_class() -> Any:
    """The validator class of :func:`_validator`, built once (prepare and every
    ``--config`` leaf use it)."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return validators.extend(Draft202012Validator, type_checker=checker)


def validate(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise one ``SymatoError`` listing every violation, each naming its key."""
    errors = sorted(_validator(schema).iter_errors(config),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"{_where(e)}: {e.message}" for e in errors]
        raise SymatoError("invalid config:\n  " + "\n  ".join(lines))


def fill_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill every default the (bundled) schema states, through objects and arrays.

    Only ``properties`` and ``items`` are followed: a schema under
    ``additionalProperties`` (e.g. the per-architecture overrides) describes what may be
    given, not what must be there.
    """
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = fill_defaults(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [fill_defaults(item, schema["items"]) for item in value]
    return value


# ----------------------------------------------------------------------------- --config
def _child(schema: Any, key: str) -> Any:
    """The schema of ``key`` inside an object schema (None where it says nothing)."""
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _items(schema: Any) -> Any:
    """The schema of an array's items, also inside ``oneOf``/``anyOf`` branches."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("items"), dict):
        return schema["items"]
    branches = [*schema.get("oneOf", []), *schema.get("anyOf", [])]
    return next((found for b in branches if (found := _items(b)) is not None), None)


def _typed(text: str, schema: Any) -> Any:
    """What ``yaml.safe_load`` makes of ``text``, unless the schema wants it as a string.

    Why the exception: a name such as ``"123"`` or ``"yes"`` is a valid string where the
    schema asks for one; where it does not (or says nothing), YAML's reading is the one a
    config file would give.
    """
    if schema is None or _validator(schema).is_valid(text):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _retyped(value: Any, given: Any, schema: Any) -> Any:
    """``value`` (the merged config at one key) with the leaves ``given`` set typed."""
    if isinstance(given, dict) and isinstance(value, dict):
        for key in given:
            if key in value:
                value[key] = _retyped(value[key], given[key], _child(schema, key))
        return value
    if isinstance(value, list) and isinstance(given, list):
        items = _items(schema)
        return [_retyped(item, item, items) for item in value]
    if isinstance(value, str) and isinstance(given, str):
        return _typed(value, schema)
    return value


def type_overrides(config: dict[str, Any], overrides: Any, schema: dict[str, Any]) -> None:
    """Give the values set on the command line the types of the same YAML in a file.

    Why: Snakemake reads ``--config KEY=VALUE`` with YAML's base loader, so every leaf of
    ``report={bootstrap: 10}`` arrives as a string (``'10'``) and the schema refuses it.
    It has already merged the mapping into the config file's section key by key (the
    file's other keys stay), so only the leaves that came from the command line are
    retyped here, in place.
    """
    for key, given in (overrides or {}).items():
        if key in config:
            config[key] = _retyped(config[key], given, _child(schema, key))


def prepare(config: dict[str, Any], schema_path: str | Path,
            overrides: Any = None) -> dict[str, Any]:
    """Validate ``config`` against the schema, then fill every default, in place.

    ``overrides``: Snakemake's parsed ``--config`` values (``workflow.config_settings
    .config``), already merged into ``config``; their leaves are typed as YAML first.
    """
    schema = load_schema(schema_path)
    type_overrides(config, overrides, schema)
    validate(config, schema)
    for notice in resolve_aliases(config):
        print(f"symato: {notice}", file=sys.stderr)
    fill_defaults(config, schema)
    validate(config, schema)  # a default must itself be valid
    return config


def resolve_aliases(config: dict[str, Any]) -> list[str]:
    """Replace old architecture names (``symato.models.registry.ALIASES``: ``rwkv`` is
    ``rwkv4``) in ``train.grids[*].archs`` and the keys of ``train.arch_overrides`` by
    today's, in place; return one notice per old name used, for the user to update the
    config at leisure.

    Why accept them: configs written before the rename must keep running (their runs are
    now named ``rwkv4-...``); why say so: a silent rename would leave the reader of the
    config wondering why no ``rwkv-...`` run folder appears.
    """
    from symato.models.registry import ALIASES

    train = config.get("train") or {}
    used: dict[str, list[str]] = {}
    for i, grid in enumerate(train.get("grids") or []):
        archs = grid.get("archs") or []
        for j, arch in enumerate(archs):
            if arch in ALIASES:
                archs[j] = ALIASES[arch]
                used.setdefault(arch, []).append(f"train.grids[{i}].archs[{j}]")
    overrides = train.get("arch_overrides") or {}
    for old in [key for key in overrides if key in ALIASES]:
        new = ALIASES[old]
        if new in overrides:
            raise SymatoError(f"train.arch_overrides: {old!r} and {new!r} name one "
                              f"architecture ({old!r} is its old name): keep {new!r} only")
        overrides[new] = overrides.pop(old)
        used.setdefault(old, []).append(f"train.arch_overrides.{old}")
    return [f"config: {', '.join(where)}: {old!r} is the old name of architecture "
            f"{ALIASES[old]!r}, read as {ALIASES[old]!r} (its runs are named "
            f"{ALIASES[old]}-...; docs/models.md)" for old, where in used.items()]
