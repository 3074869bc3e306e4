"""The noise floor: how far the figures of one model lie apart when only the arithmetic changes.

llama.cpp's CPU path quantises the input of every matrix multiply to 8 bits, so any two ways of
decoding the same GGUF (one token at a time or 64 positions per batch, several sequences in one
batch, another build or another CPU's SIMD path) round differently, and a logprob moves by up to
this much with no change in the model at all. Two figures are called different only beyond it.
The figures come from measurements on these machines (`bench/bench_noise.py`, docs/ci.md), not
from estimates.
"""

from __future__ import annotations

# |Δ logprob| of one token between two decodings of the same model, in nats (411-token text
# against a float32 reference and between decode shapes: median 0.04, p99 0.31–0.39, max 0.50–0.63).
DECODE_MEDIAN = 0.04
DECODE_P99 = 0.39
DECODE_MAX = 0.63

# The default tolerances of `tokviz diff` and `tokviz check`: the largest figure measured between
# two ways of decoding one model (bench/bench_noise.py: decode shapes, --parallel, the fast scorer,
# llama-server against the embedded model), with a margin; docs/ci.md has the table they come from.
ATOL = 1.0  # nats: the largest |Δ logprob| of one chosen token
ATOL_MEAN = 0.15  # nats: the mean |Δ logprob| over a record (a real change moves many tokens)
MIN_OVERLAP = 0.6  # the smallest share of one top-k list found in the other's, at one step
MAX_KL = 0.1  # nats: the largest KL over the top-k lists and the rest (a lower bound), at one step
NEAR_TIE = 0.6  # nats: a chosen token and its runner-up closer than this may swap on another engine
# percentage points: the largest move of one answer's share among weighed choices (`predict --choice`)
# between two decodings of one model (bench/bench_choices.py: 20 prompts, serial against the fast
# scorer's batched decoding: max 4.6 points, median 0), with a margin.
SHARE_POINTS = 8.0
