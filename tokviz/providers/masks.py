"""What the in-process engines share when a grammar masks a row (`--json-schema`): a step keeps the
model's own figures, and each alternative the mask removed is marked `forbidden`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tokviz.run import Step

if TYPE_CHECKING:
    import numpy as np


def forbidden_marks(step: Step, masked: np.ndarray) -> Step:
    """The step with each alternative the mask removed (at -inf in `masked`) marked `forbidden`."""
    import numpy as np

    alts = tuple(replace(a, forbidden=True) if a.id is not None and not np.isfinite(masked[a.id]) else a
                 for a in step.alternatives)
    return replace(step, alternatives=alts)
