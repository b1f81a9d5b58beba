"""The one dotted `KEY=VALUE` override syntax (`optim.lr=1e-4`, `model.overrides.dim=48`).

The value is read as one line of YAML, so `3`, `2.5`, `true`, `[8, 16]` and `null` keep their types.
Recipes, sweeps, benchmarks and every command's `--override` parse overrides here; errors name the
override text.
"""

from __future__ import annotations

import copy
import reprlib
from typing import Any

import yaml


class OverrideError(ValueError):
    """An override that is not `key.sub=value` with a YAML value; the message names it."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 50
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 2, 4, 4, 4, 4


def short_repr(value: Any) -> str:
    """repr for error messages, bounded: a YAML alias bomb must never be expanded into a message."""
    return _SHORT.repr(value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value parsed as YAML; an empty value is null)."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise OverrideError(f"override {text!r} is not of the form key.sub=value")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OverrideError(f"override {text!r}: the value is not valid YAML ({first})") from None
    return key.split("."), parsed


def format_override(key: str, value: Any) -> str:
    """`key=value` with the value as one line of YAML: the text `parse_override` reads back as `value`
    (None -> `key=null`, True -> `key=true`, [8, 16] -> `key=[8, 16]`)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("...\n").strip()
    return f"{key}={text}"


def parse_field_overrides(texts, option: str = "--override") -> dict:
    """`dim=16 ranks=[4,4]` -> {"dim": 16, "ranks": [4, 4]}: flat model field names (no dots), for the
    commands that take model fields; errors name `option`."""
    fields = {}
    for text in texts:
        try:
            path, value = parse_override(text)
        except OverrideError as err:
            raise OverrideError(f"{option}: {err}") from None
        if len(path) != 1:
            raise OverrideError(f"{option} {text!r}: a model field name has no dots (e.g. dim=16)")
        fields[path[0]] = value
    return fields


def apply_overrides(mapping: dict, texts, source: str) -> dict:
    """Set each `key.sub=value` in a copy of `mapping`; intermediate mappings are created as needed."""
    result = copy.deepcopy(mapping)
    for text in texts:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise OverrideError(f"{source}: override {text!r}: {'.'.join(path[: depth + 1])} is not a mapping")
            node = child
        node[path[-1]] = value
    return result
