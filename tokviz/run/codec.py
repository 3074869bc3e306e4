"""Reading a record's fields, checked, and the schema version a record needs.

Each record class reads its own fields with these readers (a wrong type or range raises
`ValueError` naming the field, which `Run.from_dict` turns into one "damaged run" line), so what a
view relies on is checked where the field is declared. Fields added after schema 1 say so in their
metadata (`since(2)`); a record is written with the lowest version that holds the fields it uses,
so a run that uses none of them keeps its old bytes and older tokviz versions still read it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any


def since(version: int) -> dict[str, int]:
    """Field metadata: the schema version that added the field (written only when it is set)."""
    return {"since": version}


def version(record: Any) -> int:
    """The lowest schema version that holds `record`: the newest `since` of any field, at any
    depth, whose value is not its default (a record's `since_values()` may add one for a value)."""
    found = 1
    if isinstance(record, (tuple, list)):
        for item in record:
            found = max(found, version(item))
        return found
    plan = _plan(type(record))
    if plan is None:
        return found
    for name, added, default in plan:
        value = getattr(record, name)
        if added > found and value != default:
            found = added
        if isinstance(value, (tuple, list)) or _plan(type(value)) is not None:
            found = max(found, version(value))
    extra = getattr(record, "since_values", None)
    return max(found, extra()) if extra is not None else found


@functools.cache
def _plan(kind: type) -> tuple[tuple[str, int, Any], ...] | None:
    """A dataclass's fields as (name, the version that added it (1: the first), default); None for
    anything else. Cached per class: a scored text of 10,000 tokens asks for it 60,000 times."""
    if not dataclasses.is_dataclass(kind):
        return None
    out = []
    for f in dataclasses.fields(kind):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        out.append((f.name, int(f.metadata.get("since", 1)), default))
    return tuple(out)


def obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be an object")
    return value


def listed(d: Mapping[str, Any], key: str, default: Any = dataclasses.MISSING) -> list[Any]:
    value = d.get(key, default) if default is not dataclasses.MISSING else d.get(key)
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list")
    return value


def text(d: Mapping[str, Any], key: str, *, optional: bool = False) -> Any:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string" + (" or null" if optional else ""))
    return value


def whole(d: Mapping[str, Any], key: str, *, default: Any = dataclasses.MISSING, low: int | None = None,
          where: str = "") -> Any:
    """An int (never a bool), at least `low`; `default` when absent (None allowed as a default)."""
    value = d.get(key, default) if default is not dataclasses.MISSING else d.get(key)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        raise ValueError(f"{where}{key} must be a whole number" + (f" ≥ {low}" if low is not None else ""))
    return value


def number(d: Mapping[str, Any], key: str, *, default: Any = dataclasses.MISSING, low: float | None = None,
           where: str = "") -> float:
    """A finite int or float (never a bool), at least `low`."""
    value = d.get(key, default) if default is not dataclasses.MISSING else d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            low is not None and value < low):
        raise ValueError(f"{where}{key} must be a finite number" + (f" ≥ {low:g}" if low is not None else ""))
    return float(value)


def figures(d: Mapping[str, Any], key: str) -> dict[str, float]:
    """A table of named finite numbers (usage, timings)."""
    table = d.get(key, {})
    if not isinstance(table, dict):
        raise TypeError(f"{key!r} must be an object")
    return {str(name): number(table, name, low=0, where=f"{key}.") for name in table}  # counts and seconds: ≥ 0


# --- JSON as tokviz reads it: strict -----------------------------------------------------------

# A \uD800-\uDFFF escape that is not half of a pair: JSON lets a file say it, but it is no
# character, and every UTF-8 writer (a report, a terminal, SQLite) fails on it later.
_LONE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                   r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number (tokviz refuses infinity and NaN)")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:20]}… is beyond a float's range" if len(literal) > 20 else
                         f"{literal} is beyond a float's range")
    return value


def loads(text: str) -> Any:
    """`json.loads`, refusing what no record tokviz writes holds: Infinity, NaN, numbers past a
    float's range (-1e309 would read as -inf), integers of thousands of digits, and lone
    surrogates. Each is a `ValueError` (with `json.JSONDecodeError`, a subclass, for syntax)."""
    if "\\u" in text and (bad := _LONE.search(text)):
        raise ValueError(f"it holds {bad.group(0)}, half of a surrogate pair, which is no character")
    if has_surrogate(text):
        raise ValueError("it holds a lone surrogate, which is no character")
    return json.loads(text, parse_constant=_constant, parse_float=_finite)


def has_surrogate(text: str) -> bool:
    """Whether a string holds a lone surrogate (from a JSON escape, or a file name read with
    `surrogateescape`): it cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str) -> str:
    """`text` with lone surrogates written as escapes (\udcff), so it can be printed or stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if has_surrogate(text) else text


# Characters JSON leaves raw that act on a terminal or an editor when a file is shown (DEL, the C1
# controls such as U+009B, which some terminals read as ESC [), the line separators and the bidi
# controls: written as \u escapes, which every JSON reader turns back into the same text.
_ACTIVE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` as tokviz writes its files: UTF-8 text as text, and every character that could
    act on a terminal as an escape (JSON already escapes ESC, BEL and NUL)."""
    kwargs["ensure_ascii"] = False
    return _ACTIVE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, **kwargs))
