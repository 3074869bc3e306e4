"""The data model: a `Run` is everything a provider told us, and everything a view needs.

This package's face is the public API providers and scripts build on (`from tokviz.run import Run,
Step, Token`): the record types live in `record`, token text in `tokens`, the generation options
in `generation`.
"""

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
    greedy_indices,
    greedy_path,
    load_record,
    same_token,
)

__all__ = ["LOGPROB_FLOOR", "SCHEMA", "SCHEMA_VERSION", "SET_SCHEMAS", "SET_SCHEMA_VERSION", "Branch", "Message",
           "Params", "Run", "RunKind", "RunSet", "Step", "Token", "Tokenization", "TreeInfo", "TreeNode",
           "greedy_indices", "greedy_path", "load_record", "same_token"]
