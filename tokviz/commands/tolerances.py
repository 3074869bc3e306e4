"""The tolerances of `tokviz diff` and `tokviz check`, declared once: their options, their settings in
`[tool.tokviz.check]` of pyproject.toml, and the `Tolerance` they make (an option wins over the
project's setting, which wins over the measured default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Optional, TypeVar

import typer

from tokviz.commands.common import with_options
from tokviz.ground.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
SECTION = "check"

# name → (flag, type, metavar, help); the defaults are measures.noise's, said in the help.
OPTIONS: dict[str, tuple[str, type, str, str]] = {
    "atol": ("--atol", float, "NATS", "Largest |Δ logprob| of a chosen token. Default: the measured noise floor with "
             "a margin (docs/ci.md)."),
    "atol_mean": ("--atol-mean", float, "NATS", "Largest mean |Δ logprob| over a record."),
    "tokens": ("--tokens", str, "MODE", "'tie-aware' (default: the chosen tokens agree, except at a fork between two "
               "tokens within --near-tie of each other), 'exact' (no fork at all) or 'prefix:N' (the first N agree)."),
    "near_tie": ("--near-tie", float, "NATS", "Two tokens closer than this are a near-tie another engine may break "
                 "the other way."),
    "min_overlap": ("--min-overlap", float, "F", "Smallest share of one top-k list found in the other, at any step (0-1)."),
    "max_kl": ("--max-kl", float, "NATS", "Largest KL over the top-k lists and the rest (a lower bound), at any step."),
    "share_points": ("--share-points", float, "POINTS", "Weighed answers (--choice): the largest move of one answer's "
                     "share, in percentage points; also how close two winners may be to swap as a near-tie."),
}


def tolerance_options() -> Callable[[F], F]:
    """Give a command the tolerance options; it is called with `tol`: the values given (by name)."""
    def decorate(fn: F) -> F:
        def added() -> list[tuple[str, Any, Any]]:
            return [(name, Annotated[Optional[kind], typer.Option(flag, metavar=metavar, help=text, show_default=False)], None)
                    for name, (flag, kind, metavar, text) in OPTIONS.items()]
        return with_options(fn, "tol", added, lambda given: {k: v for k, v in given.items() if v is not None})
    return decorate


def tolerance(given: dict[str, Any], *, identical: bool = False) -> Any:
    """The Tolerance in force: the options given, over the project's [tool.tokviz.check] settings,
    over the measured defaults. A bad value is one usage line naming where it came from."""
    from tokviz.ground.settings import project_settings
    from tokviz.measures.compare import Tolerance

    settings, path = project_settings(SECTION)
    try:
        Tolerance.from_settings(settings)
    except ValueError as err:
        raise UsageError(f"{path} [tool.tokviz.{SECTION}]: {err}") from None
    try:
        return Tolerance.from_settings(settings, given, identical=identical)
    except ValueError as err:
        raise UsageError(f"bad tolerance: {err}") from None
