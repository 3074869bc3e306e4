"""Provider → record: the one path every command takes to get tokens, whatever the provider.

`plan` turns the generation options into a provider's `Request` (checked before anything is
loaded or sent, `plans`); `predict`, `sample`, `score` and `tokenize` run it (`runs`); the tree
algorithm lives in `trees`, once, over the small `TreeCursor` protocol that a provider implements;
`goldens` compares rendered files with files on disk. This module is the package's face.
"""

from tokviz.pipeline.choices import weigh
from tokviz.pipeline.plans import Plan, check, open_provider, plan, plan_request, with_prompt
from tokviz.pipeline.runs import Stopped, predict, predict_together, sample, score, tokenize, watching
from tokviz.pipeline.trees import check_tree, open_cursor, open_explorer, tree

__all__ = [
           "Plan",
           "Stopped",
           "check",
           "check_tree",
           "open_cursor",
           "open_explorer",
           "open_provider",
           "plan",
           "plan_request",
           "predict",
           "predict_together",
           "sample",
           "score",
           "tokenize",
           "tree",
           "watching",
           "weigh",
           "with_prompt",
]
