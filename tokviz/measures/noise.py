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
