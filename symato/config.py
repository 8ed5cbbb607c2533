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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from symato.errors import SymatoError

REGISTRY_KEY = "x-symato-registry"


def _architectures() -> dict[str, Any]:
    from symato.models.registry import ARCHITECTURES

    return {"enum": list(ARCHITECTURES)}


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


def validate(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise one ``SymatoError`` listing every violation, each naming its key."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(config),
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


def prepare(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` against the schema, then fill every default, in place."""
    schema = load_schema(schema_path)
    validate(config, schema)
    fill_defaults(config, schema)
    validate(config, schema)  # a default must itself be valid
    return config
