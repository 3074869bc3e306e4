"""The reduction of a row of logits: exact top-k, log-normaliser and rank, on any row."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tokviz.providers import logits as local_logits
from tokviz.providers.logits import logsumexp, reduce_row, reduce_rows, top_k


def reference_top_k(row: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-float(row[i]), i))[:k]


@given(st.lists(st.floats(-40, 40, width=32) | st.sampled_from([0.0, 1.0, -np.inf]), min_size=1, max_size=300),
       st.integers(0, 25))
def test_top_k_is_the_sorted_head_of_the_row_ties_by_id(values: list[float], k: int) -> None:
    row = np.array(values, dtype=np.float32)
    if not np.isfinite(row).any():
        row[0] = 0.0
    assert top_k(row, k) == reference_top_k(row, k)


def test_a_wide_flat_row_and_the_rank() -> None:
    rng = np.random.default_rng(1)
    row = (rng.standard_normal(262_144) * 0.01).astype(np.float32)  # thousands inside every cut
    assert top_k(row, 20) == reference_top_k(row, 20)
    reduced = reduce_row(row, 5, target=123)
    assert reduced.rank == int((row > row[123]).sum()) + 1
    assert reduced.lse == logsumexp(row)
    assert np.isclose(reduced.lse, np.log(np.exp(row.astype(np.float64)).sum()))
    many = reduce_rows(np.stack([row, row[::-1].copy()]), 3, [5, None])
    assert many[0] == reduce_row(row, 3, 5) and many[1].rank is None


def test_the_local_provider_uses_this_reduction() -> None:
    assert local_logits.top_k is top_k and local_logits.logsumexp is logsumexp  # one implementation
