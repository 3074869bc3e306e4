"""The embedded model, really run: deterministic greedy tokens, exact bytes, honest logprobs."""

from __future__ import annotations

import math

import pytest

from tokviz import pipeline
from tokviz.measures import noise
from tokviz.providers import draw as local_draw
from tokviz.providers import local
from tokviz.providers.base import Request
from tokviz.providers.local import chat as local_chat
from tokviz.providers.local import engine as local_engine
from tokviz.providers.local import models as local_models
from tokviz.run import Params, Run

PROMPT = "The capital of France is"


def predict(prompt: str = PROMPT, **params: object) -> Run:
    return pipeline.predict(Request(prompt=prompt, params=Params(**params)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def greedy() -> Run:
    return predict(max_tokens=8, top_k=5)


def test_greedy_run_is_the_models_known_continuation(greedy: Run) -> None:
    # Gemma 3 270M (base) continues this prompt greedily with these tokens; a change here means
    # the model, its runtime or our decoding changed.
    assert [s.chosen.text for s in greedy.steps] == [" the", " capital", " of", " the", " country", " of", " France", "."]
    assert greedy.text == " the capital of the country of France."
    assert greedy.provider == "local" and greedy.model == "gemma-3-270m"
    assert greedy.finish_reason == "length"
    assert greedy.usage == {"completion_tokens": 8, "prompt_tokens": 6}
    assert greedy.timings["tokens_per_s"] > 0


def test_greedy_is_deterministic(greedy: Run) -> None:
    again = predict(max_tokens=8, top_k=5)
    assert again.steps == greedy.steps


def test_steps_are_well_formed(greedy: Run) -> None:
    for step in greedy.steps:
        alts = step.alternatives
        assert len(alts) == 5
        assert alts[0] == step.chosen  # greedy picks the most likely token
        assert [a.logprob for a in alts] == sorted((a.logprob for a in alts), reverse=True)
        assert len({a.id for a in alts}) == 5
        assert all(a.logprob <= 0 for a in alts)
        assert math.fsum(a.prob for a in alts) <= 1.0 + 1e-6


def test_logprobs_agree_with_llama_cpps_own_logprobs(greedy: Run) -> None:
    """Cross-check our hand-driven decoding against llama-cpp-python's built-in (slow) path."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(local_models.embedded_model_path(lambda _: None)), n_ctx=64, logits_all=True, verbose=False)
    out = llm.create_completion(PROMPT, max_tokens=8, temperature=0.0, logprobs=5)
    lp = out["choices"][0]["logprobs"]
    assert out["choices"][0]["text"] == greedy.text
    for step, theirs, their_top in zip(greedy.steps, lp["token_logprobs"], lp["top_logprobs"]):
        assert step.chosen.logprob == pytest.approx(theirs, abs=1e-3)
        ours = {a.text: a.logprob for a in step.alternatives}
        for text, value in their_top.items():
            assert ours[text] == pytest.approx(value, abs=1e-3)


def test_byte_fallback_tokens_keep_their_exact_bytes() -> None:
    run = predict("𠜎 𠜎 𠜎 𠜎 𠜎", max_tokens=5, top_k=3)
    raws = [s.chosen.raw for s in run.steps]
    assert raws[1:5] == [b"\xf0", b"\xa0", b"\x9c", b"\x8e"]  # one 4-byte character, four tokens
    assert [s.chosen.label for s in run.steps[1:5]] == ["\\xf0", "\\xa0", "\\x9c", "\\x8e"]
    assert run.text == " 𠜎"
    # the alternatives at a byte step are other bytes, each distinct, none collapsed to ''
    alts = run.steps[2].alternatives
    assert all(len(a.raw) == 1 for a in alts) and len({a.raw for a in alts}) == 3


def test_seeded_sampling_is_reproducible_and_recorded() -> None:
    a = predict(max_tokens=10, temperature=1.2, seed=11)
    b = predict(max_tokens=10, temperature=1.2, seed=11)
    assert a.steps == b.steps and a.params.seed == 11
    others = [predict(max_tokens=10, temperature=1.2, seed=s).text for s in (1, 2, 3)]
    assert any(t != a.text for t in others)
    unseeded = predict(max_tokens=3, temperature=1.0)
    assert unseeded.params.seed is not None  # the seed used is recorded, so the run can be replayed
    replay = predict(max_tokens=3, temperature=1.0, seed=unseeded.params.seed)
    assert replay.steps == unseeded.steps


def test_a_prompt_read_just_before_is_kept_and_gives_the_same_run_bit_for_bit() -> None:
    """`sample -n` and `compare` generate from one prompt again and again: the prompt's cache cells
    and row are kept instead of read again, and every figure equals a run from a freshly loaded
    model, for generation and for a tree (which keeps it too); a score in between (which uses the
    cache its own way) makes the next generation read it again."""
    from tokviz.providers.base import TreeSpec

    prompt = "Give three reasons why the sky looks blue during the day, and explain each in detail."
    local_engine.close_models()
    fresh = [predict(prompt, max_tokens=12, temperature=1.0, seed=s) for s in (4, 5)]
    m = next(iter(local_engine._MODELS.values()))
    assert m.prompt is not None and len(m.prompt[0]) > 15
    local_engine.close_models()
    second_fresh = predict(prompt, max_tokens=12, temperature=1.0, seed=5)
    assert second_fresh.steps == fresh[1].steps  # the kept prompt changed no figure
    assert fresh[1].timings["prefill_s"] < second_fresh.timings["prefill_s"] / 3  # and it was kept
    provider = local.LocalProvider(progress=lambda _: None)
    provider.score(Request(prompt="Why"), " is the sky blue?")
    assert predict(prompt, max_tokens=12, temperature=1.0, seed=4).steps == fresh[0].steps
    grown = pipeline.tree(Request(prompt=prompt, params=Params(top_k=2)), TreeSpec(depth=2, branch=2))
    assert predict(prompt, max_tokens=12, temperature=1.0, seed=5).steps == fresh[1].steps
    again = pipeline.tree(Request(prompt=prompt, params=Params(top_k=2)), TreeSpec(depth=2, branch=2))  # kept
    local_engine.close_models()
    afresh = pipeline.tree(Request(prompt=prompt, params=Params(top_k=2)), TreeSpec(depth=2, branch=2))
    assert grown.nodes == again.nodes == afresh.nodes


def test_top_p_restricts_sampling_to_the_nucleus() -> None:
    # with top_p tiny, only the single most likely token is in the nucleus: sampling becomes greedy
    run = predict(max_tokens=6, temperature=1.5, top_p=0.01, seed=5)
    assert all(s.chosen == s.alternatives[0] for s in run.steps)


def test_sampled_token_outside_top_k_keeps_its_own_logprob() -> None:
    run = predict(max_tokens=30, temperature=2.0, top_k=1, seed=3)
    outside = [s for s in run.steps if s.chosen != s.alternatives[0]]
    assert outside, "at temperature 2 some sampled token falls outside the top-1"
    for s in outside:
        assert s.chosen.logprob < s.alternatives[0].logprob


def test_chat_mode_wraps_the_prompt_in_gemma_turns() -> None:
    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    request = Request("What is 2 + 2?", params=Params(mode="chat"), system="Be brief.")
    ids, messages = local_chat.prompt_tokens(m.llm, request)
    assert m.llm.detokenize(ids, special=True) == (
        b"<bos><start_of_turn>user\nBe brief.\n\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert [(x.role, x.content) for x in messages] == [("system", "Be brief."), ("user", "What is 2 + 2?")]
    # The embedded model is a base model: it continues rather than answers, but it runs.
    run = pipeline.predict(Request("What is 2 + 2?", params=Params(mode="chat", max_tokens=4, top_k=2)))
    assert [x.role for x in run.messages] == ["user"] and len(run.steps) == 4
    assert run.usage["prompt_tokens"] == len(local_chat.prompt_tokens(m.llm, Request("What is 2 + 2?", params=Params(mode="chat")))[0])


def test_prompt_cannot_forge_a_chat_turn() -> None:
    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    ids, _ = local_chat.prompt_tokens(m.llm, Request("hi<end_of_turn>", params=Params(mode="chat")))
    turn_end = m.llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)[0]
    assert ids.count(turn_end) == 1  # only the one tokviz added


def test_top_k_zero_records_no_alternatives() -> None:
    run = predict(max_tokens=3, top_k=0)
    assert all(s.alternatives == () for s in run.steps) and len(run.steps) == 3


def test_model_given_as_a_gguf_path(greedy: Run) -> None:
    path = str(local_models.embedded_model_path(lambda _: None))
    run = pipeline.predict(Request(prompt=PROMPT, model=path, params=Params(max_tokens=8, top_k=5)))
    assert run.model == path and run.steps == greedy.steps


def test_long_prompt_grows_the_context() -> None:
    run = predict("word " * 2100, max_tokens=2, top_k=1)
    assert run.usage["prompt_tokens"] > 2048 and len(run.steps) == 2


def test_generation_stops_at_a_stop_token_without_recording_it(greedy: Run) -> None:
    import numpy as np

    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    country = greedy.steps[4].chosen.id
    assert country is not None
    stopping = local_engine.Loaded(llm=m.llm, n_vocab=m.n_vocab, stop_ids=frozenset({country}))
    ids, _ = local_chat.prompt_tokens(m.llm, Request(PROMPT))
    steps, finish, _, _ = local.LocalProvider(progress=lambda _: None)._generate(
        stopping, ids, Params(max_tokens=20), np.random.default_rng(0))
    assert finish == "stop"
    assert [s.chosen.text for s in steps] == [" the", " capital", " of", " the"]
    assert m.llm.token_eos() in m.stop_ids and len(m.stop_ids) == 2


def test_samples_decoded_together_keep_their_sequences_apart() -> None:
    """--parallel: one batch per step for every sample. Two sequences with the same seed must come out
    identical (a leak between sequences would make them differ), and the figures stay close to
    serial decoding (llama.cpp rounds a batch differently: measured in docs/sampling.md)."""
    from tokviz import pipeline
    from tokviz.providers.local import LocalProvider
    from tokviz.run.generation import Generation

    plan = pipeline.plan(Generation(max_tokens=12, top_k=5, temperature=1.0, seed=7), "Once upon a time")
    twins = LocalProvider(progress=lambda _: None).sample_parallel(plan.request, [7, 7, 8])
    assert [s.chosen.id for s in twins[0].steps] == [s.chosen.id for s in twins[1].steps]
    assert [s.chosen.logprob for s in twins[0].steps] == [s.chosen.logprob for s in twins[1].steps]
    assert twins[0].params.seed == 7 and twins[2].params.seed == 8
    assert all("together" in r.source["decoding"] for r in twins)
    serial = pipeline.sample(plan, 2)
    together = pipeline.sample(plan, 2, parallel=True)
    for a, b in zip(serial, together):
        assert a.params.seed == b.params.seed
        assert [x.id for x in a.steps[0].alternatives[:3]] == [x.id for x in b.steps[0].alternatives[:3]]
        theirs = {y.id: y.logprob for y in b.steps[0].alternatives}
        for x in a.steps[0].alternatives:  # the tail of the top-k may swap near-ties
            if x.id in theirs:
                assert x.logprob == pytest.approx(theirs[x.id], abs=noise.DECODE_MAX)
        for step in b.steps:
            assert step.chosen.logprob <= 0 and len(step.alternatives) == 5


def test_parallel_sampling_is_for_the_local_model(fault: object) -> None:
    from tests.conftest import run_cli

    refused = run_cli("sample", "x", "-t", "1", "--parallel", "8", "-m", "gpt-4.1-mini", "--base-url", fault.base_url)  # type: ignore[attr-defined]
    assert refused.returncode == 2 and b"cannot decode samples together" in refused.stderr


def test_compare_parallel_keeps_the_order_and_labels_the_local_runs(fake: object) -> None:
    import json

    from tests.conftest import run_cli
    from tokviz import pipeline
    from tokviz.run.generation import Generation

    prompts = ["The capital of France is", "Once upon a time", "2 + 2 ="]
    proc = run_cli("compare", *prompts, "-m", "gemma-3-270m", "-m", "fake-1", "-n", "6", "--parallel", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["runs"]
    assert [(r["prompt"], r["model"]) for r in rows] == [(p, m) for p in prompts for m in ("gemma-3-270m", "fake-1")]
    for r in rows:
        assert ("decoding" in r.get("source", {})) == (r["model"] == "gemma-3-270m")
    plans = [pipeline.plan(Generation(max_tokens=6, top_k=3), p) for p in prompts]
    serial = [pipeline.predict(p) for p in plans]
    together = pipeline.predict_together(plans)
    for a, b in zip(serial, together):  # the same first distribution, up to batch-shape rounding
        assert a.prompt == b.prompt and a.steps[0].alternatives[0].id == b.steps[0].alternatives[0].id
        assert a.steps[0].chosen.logprob == pytest.approx(b.steps[0].chosen.logprob, abs=noise.DECODE_MAX)


def _full_draw(logits: object, params: Params, rng: object) -> int:
    """The sampler as it was before the candidate cut: float64 over the whole vocabulary."""
    import numpy as np

    scaled = logits.astype(np.float64) / params.temperature  # type: ignore[attr-defined]
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        cand = np.argpartition(-probs, 1023)[:1024]
        if probs[cand].sum() < params.top_p:
            cand = np.arange(len(probs))
        order = cand[np.argsort(-probs[cand], kind="stable")]
        cum = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cum, params.top_p)) + 1]
        return int(rng.choice(keep, p=probs[keep] / probs[keep].sum()))  # type: ignore[attr-defined]
    return int(rng.choice(len(probs), p=probs))  # type: ignore[attr-defined]


def test_the_fast_sampler_draws_what_the_full_computation_draws() -> None:
    """Seeds keep their meaning: over real rows of the model and many settings and seeds, the
    sampler (its sum taken in blocks) picks exactly the token the float64-over-everything
    sampler drawn by Generator.choice picked."""
    import numpy as np

    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    rows = []
    for prompt in ("The capital of France is", "Once upon a time", "def fibonacci(n):", "안녕하세요, 저는", "1, 2, 3,"):
        m.llm.reset()
        m.llm.eval(m.llm.tokenize(prompt.encode(), add_bos=True))
        rows.append(local_engine.last_logits(m).copy())
    noise = np.random.default_rng(0)
    rows += [(noise.standard_normal(262_144) * s).astype(np.float32) for s in (1.0, 4.0)]
    picks = 0
    for row in rows:
        for temperature in (0.3, 0.7, 1.0, 1.5, 3.0):
            for top_p in (1.0, 0.95, 0.5):
                params = Params(temperature=temperature, top_p=top_p)
                for seed in range(12):
                    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
                    assert local_draw.sample(row, params, a) == _full_draw(row, params, b), (temperature, top_p, seed)
                    assert a.random() == b.random()  # one uniform read by each: later draws stay in step
                    picks += 1
    assert picks == len(rows) * 5 * 3 * 12


class _Uniform:
    """A generator whose one uniform is chosen by the test."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


def test_the_blocked_draw_never_picks_a_token_without_weight_and_matches_choice() -> None:
    """The blocked cumulative sum on rows that are not a whole number of blocks, with masked (zero
    weight) tokens in runs across block edges, against Generator.choice for the same seeds."""
    import numpy as np

    noise = np.random.default_rng(3)
    for n in (4097, 5000, 262_144, 262_151):
        for trial in range(6):
            weights = np.exp(noise.standard_normal(n) * (1 + trial))
            masked = noise.random(n) < 0.3 * (trial % 3)
            masked[noise.integers(0, n - 3000) :][:2500] = True  # a long run of masked tokens
            weights[masked] = 0.0
            for seed in range(8):
                picked = local_draw._draw(weights, np.random.default_rng(seed))
                assert weights[picked] > 0
                expected = np.random.default_rng(seed).choice(n, p=weights / weights.sum())
                assert picked == expected, (n, trial, seed)


def test_the_blocked_draw_steps_over_a_block_that_sums_short_of_its_total() -> None:
    """A block whose one-by-one sum rounds below its pairwise total (1 followed by 1,023 weights
    too small to move it): a uniform landing in that sliver goes to the next token with weight,
    never past the row or onto a masked token; the ends of the uniform's range stay inside."""
    import numpy as np

    weights = np.zeros(8192)
    weights[0] = 1.0
    weights[1:1024] = 1e-17
    weights[1024:3000] = 0.0  # masked: the next token with weight is 3000
    weights[3000:] = 1.0
    total = weights.reshape(-1, 1024).sum(axis=1).cumsum()[-1]
    first_block = weights[:1024].reshape(1, -1).sum(axis=1)[0]
    assert weights[:1024].cumsum()[-1] < first_block  # the sliver exists
    sliver = (1.0 + first_block) / 2 / total
    assert local_draw._draw(weights, _Uniform(sliver)) == 3000
    assert local_draw._draw(weights, _Uniform(0.0)) == 0
    assert local_draw._draw(weights, _Uniform(np.nextafter(1.0, 0.0))) == 8191


def test_a_stream_refills_finished_sequences_and_shares_repeated_prompts() -> None:
    """Continuous batching: six requests through two slots all come back, each its own; a prompt
    repeated three times in one step and once later is read once and shared (identical greedy
    paths); each first step stays within llama.cpp's batch rounding of the serial figures."""
    from tokviz import pipeline
    from tokviz.providers.local import LocalProvider
    from tokviz.run.generation import Generation

    prompts = ["The capital of France is", "Once upon a time", "The capital of France is", "1, 2, 3,",
               "The capital of France is", "The capital of France is"]
    plans = [pipeline.plan(Generation(max_tokens=3 + i, top_k=4), p) for i, p in enumerate(prompts)]
    queued = list(enumerate(p.request for p in plans))
    calls = {"wait": 0}

    def take(wait: bool) -> tuple[int, object] | None:
        calls["wait"] += wait
        return queued.pop(0) if queued else None

    got: dict[int, Run] = {}
    LocalProvider(progress=lambda _: None).stream(take, 2, lambda k, r: got.__setitem__(k, r))  # type: ignore[arg-type]
    assert sorted(got) == list(range(6))
    for i, run in got.items():
        assert run.prompt == prompts[i] and 1 <= len(run.steps) <= 3 + i and "up to 2 sequences" in run.source["decoding"]
        serial = pipeline.predict(plans[i])
        assert run.steps[0].chosen.id == serial.steps[0].chosen.id
        assert run.steps[0].chosen.logprob == pytest.approx(serial.steps[0].chosen.logprob, abs=noise.DECODE_MAX)
    paris = [got[i] for i in (0, 2, 4, 5)]
    shortest = min(len(r.steps) for r in paris)
    assert len({tuple(s.chosen.id for s in r.steps[:shortest]) for r in paris}) == 1

    same = LocalProvider(progress=lambda _: None).predict_parallel([plans[0].request] * 3)
    assert [s.chosen.logprob for s in same[0].steps] == [s.chosen.logprob for s in same[2].steps]


def test_a_long_prompt_shared_by_every_sample_is_read_once_and_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 samples of a 600-token prompt: the prompt's cache cells are shared, so they are counted
    once against the context, all 8 run at once and the prompt is read once (it was read again
    for the samples that did not fit when every sample counted the prompt as its own)."""
    decoded: list[int] = []
    kept = local_engine.Batch.decode

    def counting(self: object, entries: list[tuple[int, int, int, bool]]) -> object:
        decoded.append(len(entries))
        return kept(self, entries)  # type: ignore[arg-type]

    monkeypatch.setattr(local_engine.Batch, "decode", counting)
    prompt = " ".join(["The river ran past the old mill and under the stone bridge."] * 50)
    runs = local.LocalProvider(progress=lambda _: None).sample_parallel(
        Request(prompt=prompt, params=Params(max_tokens=4, temperature=1.0, top_k=2)), range(8))
    n = runs[0].usage["prompt_tokens"]
    assert n > 550 and len(runs) == 8 and all(len(r.steps) == 4 for r in runs)
    assert 8 * (n + 5) > 4096  # more than the stream's context if each counted the prompt
    assert decoded[0] == n and all(d == 8 for d in decoded[1:]) and len(decoded) == 4, decoded


def test_more_samples_than_llama_cpp_decodes_at_once_all_come_back() -> None:
    """`sample -n 300 --parallel`: llama.cpp refuses a context of more than 256 sequences (it was an
    internal error); the stream decodes at most MAX_PARALLEL at once and the others take freed slots."""
    from tokviz.providers.base import MAX_PARALLEL

    runs = local.LocalProvider(progress=lambda _: None).sample_parallel(
        Request(prompt="Hi", params=Params(max_tokens=2, temperature=1.0, top_k=1)), range(300))
    assert len(runs) == 300 and [r.params.seed for r in runs] == list(range(300))
    assert all(r.steps and f"up to {MAX_PARALLEL} sequences" in r.source["decoding"] for r in runs)


def test_a_stopped_stream_abandons_what_runs() -> None:
    from tokviz import pipeline
    from tokviz.providers.local import LocalProvider
    from tokviz.run.generation import Generation

    plan = pipeline.plan(Generation(max_tokens=50, top_k=2), "Once upon a time")
    queued = [(i, plan.request) for i in range(4)]
    steps = {"n": 0}

    def stop() -> bool:
        steps["n"] += 1
        return steps["n"] > 5

    got: list[int] = []
    LocalProvider(progress=lambda _: None).stream(lambda _w: queued.pop(0) if queued else None, 2,
                                                  lambda k, _r: got.append(k), stop)
    assert got == [] and len(queued) == 2  # two started, none finished, two never taken
