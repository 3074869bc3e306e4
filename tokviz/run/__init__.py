"""The data model: a `Run` is everything a provider told us, and everything a view needs.

This package's face is the public API providers and scripts build on (`from tokviz.run import Run,
Step, Token`): the record types live in `record`, token text in `tokens`, the generation options
in `generation`, field reading and schema versions in `codec`. The names are loaded on first use,
so importing `tokviz.run.generation` (every command's options, read by `tokviz --help`) does not
build the record types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokviz.run.record import (
        LOGPROB_FLOOR,
        SCHEMA,
        SCHEMA_VERSION,
        SET_SCHEMA_VERSION,
        SET_SCHEMAS,
        Branch,
        Message,
        Params,
        Run,
        RunKind,
        RunSet,
        Step,
        Token,
        Tokenization,
        TreeInfo,
        TreeNode,
        Watched,
        greedy_indices,
        greedy_path,
        load_record,
        same_token,
    )

__all__ = ["LOGPROB_FLOOR", "SCHEMA", "SCHEMA_VERSION", "SET_SCHEMAS", "SET_SCHEMA_VERSION", "Branch", "Message",
           "Params", "Run", "RunKind", "RunSet", "Step", "Token", "Tokenization", "TreeInfo", "TreeNode",
           "Watched", "greedy_indices", "greedy_path", "load_record", "same_token"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tokviz.run import record

        return getattr(record, name)
    raise AttributeError(f"module 'tokviz.run' has no attribute {name!r}")
