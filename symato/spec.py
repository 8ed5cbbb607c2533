"""Typed options with defaults and limits, written once for the package and the schema.

Why: a setting such as the learning rate or sentencepiece's ``character_coverage`` is
read at run time by the package (an installed package has no workflow schema) and
checked at config time by the workflow's schema. Each is an ``Option`` here; the
package checks values with :meth:`Option.check` and the config schema gets the same
facts from :meth:`Option.json_schema` (``symato.config`` fills the schema's
``x-symato-registry`` placeholders with them), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from symato.errors import SymatoError

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def parse_bool(text: str) -> bool:
    """A boolean from the command line (``true``/``false`` and the usual spellings)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Option:
    """One typed option. ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive.

    ``default`` None means the option has none (it must be given).
    """

    name: str
    kind: type
    help: str
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None

    @property
    def parse(self) -> Callable[[str], Any]:
        """The command-line parser of a value (``argparse``'s ``type=``)."""
        return parse_bool if self.kind is bool else self.kind

    def check(self, value: Any, where: str) -> None:
        """Reject a value of the wrong type or out of range, naming the option."""
        if self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))
        if not ok:
            raise SymatoError(f"{where}: {self.name} must be {self.kind.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            raise SymatoError(f"{where}: {self.name}={value!r}, expected one of "
                              f"{list(self.choices)}")
        for bound, fails, word in ((self.minimum, lambda b: value < b, ">="),
                                   (self.maximum, lambda b: value > b, "<="),
                                   (self.above, lambda b: value <= b, ">"),
                                   (self.below, lambda b: value >= b, "<")):
            if bound is not None and fails(bound):
                raise SymatoError(f"{where}: {self.name} must be {word} {bound}, got {value!r}")

    def json_schema(self) -> dict[str, Any]:
        """This option as a JSON-schema property (type or enum, limits, default)."""
        out: dict[str, Any] = {"description": self.help}
        if self.choices:
            out["enum"] = list(self.choices)
        else:
            out["type"] = _JSON_TYPES[self.kind]
        for key, bound in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("exclusiveMinimum", self.above),
                           ("exclusiveMaximum", self.below)):
            if bound is not None:
                out[key] = bound
        if self.default is not None:
            out["default"] = self.default
        return out


def object_schema(options: Iterable[Option]) -> dict[str, Any]:
    """A closed JSON-schema object whose properties are ``options`` (unknown keys refused)."""
    return {"type": "object", "additionalProperties": False,
            "properties": {o.name: o.json_schema() for o in options}}
