"""Certainty metrics and sampling reshapes: formulas on hand-made distributions, properties on random ones."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import check_golden, make_run, run_cli, tok
from tokviz.ground.errors import UsageError
from tokviz.measures.metrics import entropy_bits, other_mass, run_stats, step_stats
from tokviz.measures.prices import estimate_cost
from tokviz.measures.reshape import keep_top_k, keep_top_p, parse_settings, reshape, with_temperature
from tokviz.run import Params, Run, Step
from tokviz.views import export
from tokviz.views.chart import entropy_chart
from tokviz.views.export import RenderOptions

probs_strategy = st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=12).map(
    lambda xs: [x / sum(xs) for x in xs])


@pytest.mark.parametrize("k", [1, 2, 4, 8, 20])
def test_entropy_of_uniform_k_is_log2_k(k: int) -> None:
    assert entropy_bits([1 / k] * k) == pytest.approx(math.log2(k))


def test_other_bucket_holds_the_unseen_mass() -> None:
    assert other_mass([0.5, 0.25]) == pytest.approx(0.25)
    # two seen outcomes at 1/4 and an unseen 1/2: H = 1/4·2 + 1/4·2 + 1/2·1 = 1.5 bits
    assert entropy_bits([0.25, 0.25]) == pytest.approx(1.5)
    assert entropy_bits([0.25, 0.25], with_other=False) == pytest.approx(1.0)
    assert entropy_bits([1.0]) == 0.0


def test_temperature_towards_zero_is_one_hot() -> None:
    lps = [math.log(p) for p in (0.5, 0.3, 0.2)]
    assert with_temperature(lps, 0.0) == [1.0, 0.0, 0.0]
    assert with_temperature(lps, 0.01) == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    assert with_temperature(lps, 1.0) == pytest.approx([0.5, 0.3, 0.2])


def test_high_temperature_flattens() -> None:
    lps = [math.log(p) for p in (0.7, 0.2, 0.1)]
    assert max(with_temperature(lps, 100.0)) - min(with_temperature(lps, 100.0)) < 0.01


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = [0.5, 0.3, 0.15, 0.05]
    assert keep_top_p(probs, 0.5) == pytest.approx([1.0, 0, 0, 0])
    assert keep_top_p(probs, 0.6) == pytest.approx([0.625, 0.375, 0, 0])
    assert keep_top_p(probs, 0.8) == pytest.approx([0.625, 0.375, 0, 0])
    assert keep_top_p(probs, 0.81) == pytest.approx([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0])
    assert keep_top_p(probs, 1.0) == pytest.approx(probs)


def test_top_k_cuts_and_renormalises() -> None:
    assert keep_top_k([0.1, 0.6, 0.3], 2) == pytest.approx([0, 2 / 3, 1 / 3])
    assert keep_top_k([0.1, 0.6, 0.3], 9) == pytest.approx([0.1, 0.6, 0.3])


@given(probs_strategy, st.sampled_from(["T=0.3", "T=1", "T=2.5", "top_k=1", "top_k=3", "top_p=0.5", "top_p=0.95"]))
def test_every_reshape_is_a_distribution(probs: list[float], text: str) -> None:
    shaped = reshape([math.log(p) for p in probs], parse_settings(text)[0])
    assert math.fsum(shaped) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 + 1e-12 for p in shaped)
    # No setting ever demotes the most likely token (ties within float rounding may go either way:
    # the log → exp round trip can swap two probabilities 1e-16 apart).
    top = max(probs)
    winner = max(range(len(shaped)), key=lambda i: shaped[i])
    assert probs[winner] >= top * (1 - 1e-9)


@given(probs_strategy, st.floats(min_value=0.01, max_value=1.0))
def test_top_p_set_is_minimal(probs: list[float], p: float) -> None:
    kept = [q > 0 for q in keep_top_p(probs, p)]
    mass = math.fsum(q for q, k in zip(probs, kept) if k)
    assert mass >= p - 1e-9
    smallest_kept = min(q for q, k in zip(probs, kept) if k)
    assert mass - smallest_kept < p + 1e-9  # without its least likely member the set would fall short


@given(probs_strategy)
def test_entropy_bounds(probs: list[float]) -> None:
    h = entropy_bits(probs, with_other=False)
    assert -1e-9 <= h <= math.log2(len(probs)) + 1e-9


def test_step_stats_rank_margin_surprisal() -> None:
    step = Step(chosen=tok("b", 0.25, 2), alternatives=(tok("a", 0.5, 1), tok("b", 0.25, 2), tok("c", 0.125, 3)))
    s = step_stats(step)
    assert (s.rank, s.surprisal_bits) == (2, pytest.approx(2.0))
    assert s.margin == pytest.approx(-0.25)  # a likelier token was passed over
    outside = step_stats(Step(chosen=tok("z", 0.01, 9), alternatives=(tok("a", 0.5, 1),)))
    assert outside.rank is None


def test_run_stats() -> None:
    run = make_run([[("a", 0.5), ("b", 0.5)], [("c", 0.25), ("d", 0.25)], [("e", 1.0)]])
    st_ = run_stats(run)
    assert st_.mean_chosen_prob == pytest.approx((0.5 + 0.25 + 1.0) / 3)
    assert st_.perplexity == pytest.approx(math.exp(-(math.log(0.5) + math.log(0.25)) / 3))
    assert st_.least_certain[0] == 2 and st_.distinct_alternatives == 2


def test_cost_for_known_openai_models(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    cost, source = estimate_cost("openai", "gpt-4.1-mini-2025-04-14", {"prompt_tokens": 1_000_000, "completion_tokens": 500_000})
    assert cost == pytest.approx(0.40 + 0.80) and source is not None and "gpt-4.1-mini" in source
    assert estimate_cost("local", "gemma-3-270m", {"prompt_tokens": 5}) == (None, None)
    assert estimate_cost("local", "gpt-4.1-mini", {"prompt_tokens": 5}) == (None, None)  # keyed by provider too
    prices = tmp_path / "p.json"  # type: ignore[operator]
    prices.write_text(json.dumps({"myhost": {"my-model": {"input": 1.0, "output": 2.0}}}))
    monkeypatch.setenv("TOKVIZ_PRICES", str(prices))
    assert estimate_cost("myhost", "my-model", {"prompt_tokens": 1_000_000, "completion_tokens": 0})[0] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", ["T", "x=1", "top_k=0", "top_k=1.5", "top_p=1.5", ""])
def test_bad_settings_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_settings(bad)


def test_sampling_table_and_greyed_graph_golden(small_run: Run) -> None:
    options = RenderOptions(sampling=parse_settings("T=0.5,top_k=2,top_p=0.7"), stats=True)
    text = export.render(small_run, "txt", options).decode()
    assert "top_k=2" in text and "cut" in text and "returned alternatives only" in text and "perplexity" in text
    check_golden("small_run_sampling.txt", text.encode())
    dot = export.render(small_run, "dot", options).decode()
    assert 'style="rounded,filled,dotted"' in dot and "greyed: tokens top_k=2 would cut" in dot
    check_golden("small_run_sampling.dot", dot.encode())


def test_entropy_chart_golden(small_run: Run) -> None:
    other = make_run([[("x", 0.4), ("y", 0.3), ("z", 0.3)]] * 3, prompt="<b>&</b>")
    svg = entropy_chart([small_run, other], ["one", "two <b>&amp;</b>"])
    import xml.etree.ElementTree as ET

    ET.fromstring(svg)  # well-formed: the label's markup was escaped
    assert "two &lt;b&gt;&amp;amp;&lt;/b&gt;" in svg and svg.count("<polyline") == 2
    check_golden("chart.svg", svg.encode())


def test_printed_figures_agree_with_the_runs_own_logprobs() -> None:
    """End to end on the embedded model: --stats --json figures recomputed from the steps."""
    proc = run_cli("predict", "The capital of France is", "-n", "10", "--stats", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    lps = [s["chosen"]["logprob"] for s in data["steps"]]
    stats = data["stats"]
    assert stats["perplexity"] == pytest.approx(math.exp(-sum(lps) / len(lps)), rel=1e-5)
    assert stats["mean_chosen_prob"] == pytest.approx(sum(math.exp(x) for x in lps) / len(lps), rel=1e-5)
    entropies = [entropy_bits([math.exp(a["logprob"]) for a in s["alternatives"]]) for s in data["steps"]]
    assert stats["mean_entropy_bits"] == pytest.approx(sum(entropies) / len(entropies), rel=1e-5)
    assert stats["least_certain"][0] == 1 + max(range(len(entropies)), key=lambda i: (entropies[i], -i))
    text = run_cli("predict", "The capital of France is", "-n", "10", "--stats").stdout.decode()
    assert f"{stats['perplexity']:.3f}" in text and f"{stats['mean_entropy_bits']:.3f} bits" in text
    assert Run.from_json(proc.stdout.decode()).params == Params(max_tokens=10)


def test_sample_command_on_the_embedded_model(tmp_path: object) -> None:
    out = tmp_path / "tree.dot"  # type: ignore[operator]
    proc = run_cli("sample", "Once upon a time", "-s", "4", "--max-tokens", "6", "--seed", "1", "--json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    runs = [Run.from_dict(r) for r in json.loads(proc.stdout)["runs"]]
    assert [r.params.seed for r in runs] == [1, 2, 3, 4] and all(r.params.temperature == 1.0 for r in runs)
    again = run_cli("sample", "Once upon a time", "-s", "4", "--max-tokens", "6", "--seed", "1", "--json")
    replayed = [Run.from_dict(r) for r in json.loads(again.stdout)["runs"]]
    assert [r.steps for r in replayed] == [r.steps for r in runs]  # seeded: the whole set replays
    dot = out.read_text()
    first_tokens = {r.steps[0].chosen.label for r in runs}
    assert dot.count("start -> ") == len(first_tokens)  # shared first tokens are merged
    assert run_cli("sample", "x", "-t", "0").returncode == 2


def test_compare_command_rows_and_chart(tmp_path: object) -> None:
    chart = tmp_path / "c.svg"  # type: ignore[operator]
    proc = run_cli("compare", "What is 2 + 2?", "The capital of France is", "-t", "0", "-t", "1.5", "--seed", "3",
                   "-n", "6", "--json", "-o", str(chart))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(r["prompt"], r["temperature"]) for r in rows] == [
        ("What is 2 + 2?", 0.0), ("What is 2 + 2?", 1.5), ("The capital of France is", 0.0), ("The capital of France is", 1.5)]
    assert rows[2]["text"] == " the capital of the country of"
    assert chart.read_text().count("<polyline") == 4
