"""Filling config defaults from the workflow's JSON schemas.

Why: Snakemake's ``validate`` sets defaults only where a schema states them inline; it
does not follow ``$ref`` into the per-section schema files, so a section missing from
``config.yaml`` would stay ``{}`` and every rule would need its own fallbacks. This
walks the same schemas (resolving relative ``$ref`` files) and fills every default, so
the schemas are the single place where defaults live.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from symato.errors import SymatoError


def _load(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SymatoError(f"cannot read config schema {path}: {exc}") from None


def _resolve(schema: dict[str, Any], base: Path) -> tuple[dict[str, Any], Path]:
    """Follow a relative-file ``$ref`` (with its siblings merged over the target)."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or ref.startswith("#"):
        return schema, base
    target_path = (base / ref).resolve()
    target = dict(_load(target_path))
    target.update({k: v for k, v in schema.items() if k != "$ref"})
    return _resolve(target, target_path.parent)


def _fill(value: Any, schema: dict[str, Any], base: Path) -> Any:
    schema, base = _resolve(schema, base)
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            sub_resolved, sub_base = _resolve(sub, base)
            if key not in value and "default" in sub_resolved:
                value[key] = copy.deepcopy(sub_resolved["default"])
            if key in value:
                value[key] = _fill(value[key], sub_resolved, sub_base)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fill(item, schema["items"], base) for item in value]
    return value


def fill_defaults(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Fill ``config`` in place with every default its schema (and ``$ref``s) declare."""
    path = Path(schema_path).resolve()
    _fill(config, _load(path), path.parent)
    return config
