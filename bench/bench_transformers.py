"""The transformers provider against plain transformers on the same model, in the same run.

Baselines, on the embedded GGUF dequantised to float32 (the model object tokviz itself loaded, so
weights, threads and device are the same):
- predict: a bare `model.generate(do_sample=False, output_logits=True)` of the same number of
  tokens, which keeps every step's logits and nothing more (tokviz also reduces each row to its
  log-normaliser and top k, and spells each token);
- score: one bare forward pass over the whole text with logits at every position (tokviz reads it
  in chunks of 64 positions and reduces every row to k + 1 log-probabilities and a rank).
Goal (issue 28): predict within 1.1× of the bare loop, score within 1.1× of the bare pass; the
ratios printed are bare time / tokviz time (≥ 0.91 meets it). Rounds alternate; medians.
On a machine with a CUDA device the same script measures there (`-O device` is auto).
"""

from __future__ import annotations

import argparse
import time

from bench.common import machine, median, publish
from tokviz.providers.base import Request, ScoreSpec
from tokviz.providers.registry import get_provider
from tokviz.run import Params

PROMPT = "The history of the printing press begins"


def text_of(tokens: int) -> str:
    from bench.bench_score import corpus

    return corpus(tokens)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32, help="tokens generated per predict")
    ap.add_argument("--score-tokens", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    import torch

    from tokviz.providers.hf import models as hf_models
    from tokviz.providers.hf.chat import text_ids

    provider = get_provider("transformers")
    m = hf_models.load("gemma-3-270m", {}, lambda _: None)
    net = m.model
    request = Request(prompt=PROMPT, params=Params(max_tokens=args.tokens, top_k=5))
    provider.predict(request)  # warm: first calls allocate
    ids = torch.tensor([[m.bos, *text_ids(m, PROMPT)]], device=m.device)

    def bare_predict() -> tuple[float, int]:
        t = time.perf_counter()
        with torch.inference_mode():
            out = net.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                               min_new_tokens=args.tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
        return time.perf_counter() - t, len(out.logits)

    def ours_predict() -> tuple[float, int]:
        t = time.perf_counter()
        run = provider.predict(request)
        return time.perf_counter() - t, len(run.steps)

    text = text_of(args.score_tokens)
    scored = [m.bos, *text_ids(m, text)]
    full = torch.tensor([scored], device=m.device)

    def bare_score() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            net(input_ids=full).logits.float()
        return time.perf_counter() - t

    def ours_score() -> float:
        t = time.perf_counter()
        provider.score(Request(prompt="", params=Params(top_k=5)), text, None, ScoreSpec())
        return time.perf_counter() - t

    p_ratio, s_ratio, p_rate, b_rate, s_time, b_time = [], [], [], [], [], []
    for _ in range(args.rounds):
        (bt, bn), (ot, on) = bare_predict(), ours_predict()
        b_rate.append(bn / bt)
        p_rate.append(on / ot)
        p_ratio.append((bt / bn) / (ot / on))
        bs, os_ = bare_score(), ours_score()
        b_time.append(bs)
        s_time.append(os_)
        s_ratio.append(bs / os_)
    lines = [f"### transformers provider vs plain transformers ({machine()}, {m.engine})", "",
             "| what | plain transformers | tokviz | ratio (plain time / tokviz time) | goal |", "|---|---|---|---|---|",
             f"| predict, {args.tokens} tokens greedy, top-5 | {median(b_rate):.1f} tokens/s (generate, output_logits) | "
             f"{median(p_rate):.1f} tokens/s | {median(p_ratio):.2f}× | ≥ 0.91× |",
             f"| score, {len(scored) - 1} tokens, top-5 and ranks | {median(b_time):.2f} s (one forward pass) | "
             f"{median(s_time):.2f} s | {median(s_ratio):.2f}× | ≥ 0.91× |",
             "", f"Medians of {args.rounds} alternating rounds."]
    publish("transformers", lines, args.write)


if __name__ == "__main__":
    main()
