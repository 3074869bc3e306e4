"""`tokviz tree` on the embedded model: exact probabilities, shared prefixes, honest limits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.ground.errors import UsageError
from tokviz.measures import noise
from tokviz.providers import logits as local_logits
from tokviz.providers.base import Request, TreeSpec
from tokviz.providers.local import engine as local_engine
from tokviz.providers.local import models as local_models
from tokviz.run import Params, Run
from tokviz.views import tree as tree_view

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def grown() -> Run:
    return pipeline.tree(Request(PROMPT), TreeSpec(depth=4, branch=3))


def fresh_logprobs(prompt_ids: list[int], path_ids: list[int]) -> tuple[object, float, object]:
    """Evaluate a prefix from scratch, as generation does (the prompt in one batch, then one token
    at a time), and return (logits, logsumexp, model).

    Why not the whole prefix in one batch: llama.cpp's kernels for a batch and for a single token
    round differently, and on this 4-bit model the same prefix evaluated in different batch shapes
    gave logprobs up to 0.3 nats apart (measured; see docs/tree.md). Decoding the way `predict`
    does makes this a test of the KV-cache reuse alone, which must change nothing.
    """
    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    m.llm.reset()
    m.llm.eval(prompt_ids)
    for token_id in path_ids:
        m.llm.eval([token_id])
    logits = local_engine.last_logits(m)
    return logits, local_logits.logsumexp(logits), m


def test_greedy_path_equals_predict(grown: Run) -> None:
    predicted = pipeline.predict(Request(PROMPT, params=Params(max_tokens=4, top_k=3)))
    assert [s.chosen.id for s in grown.steps] == [s.chosen.id for s in predicted.steps]
    assert [s.chosen.logprob for s in grown.steps] == pytest.approx([s.chosen.logprob for s in predicted.steps], abs=1e-4)


def test_node_probabilities_equal_a_fresh_evaluation_of_their_prefix(grown: Run) -> None:
    prompt_ids = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX).llm.tokenize(PROMPT.encode())
    kids = tree_view.children(grown)
    checked = 0
    for parent in [-1, *[i for i, n in enumerate(grown.nodes) if n.depth in (1, 3)][:4]]:
        path = tree_view.path(grown, parent) if parent >= 0 else []
        logits, lse, _ = fresh_logprobs(prompt_ids, [n.token.id for n in path])  # type: ignore[misc]
        for i in kids[parent]:
            node = grown.nodes[i]
            assert node.token.logprob == pytest.approx(float(logits[node.token.id]) - lse, abs=1e-4)  # type: ignore[index]
            assert node.cum_logprob == pytest.approx(sum(n.token.logprob for n in tree_view.path(grown, i)), abs=1e-4)
            checked += 1
    assert checked >= 12


def test_every_evaluated_token_is_a_new_node(grown: Run) -> None:
    # depth 4 × branch 3: 3 + 9 + 27 + 81 nodes; only the 39 non-leaves need evaluating
    assert len(grown.nodes) == 120
    assert grown.tree.evaluated_tokens == 39
    assert grown.tree.cut is None


def test_limits_are_respected() -> None:
    small = pipeline.tree(Request(PROMPT), TreeSpec(depth=3, branch=2))
    assert len(small.nodes) == 2 + 4 + 8 and max(n.depth for n in small.nodes) == 3
    sure = pipeline.tree(Request(PROMPT), TreeSpec(depth=3, branch=5, min_prob=0.1))
    assert sure.nodes and all(n.token.prob >= 0.1 for n in sure.nodes)
    assert len(sure.nodes) < 5 + 25 + 125
    capped = pipeline.tree(Request(PROMPT), TreeSpec(depth=4, branch=3, max_nodes=10))
    assert len(capped.nodes) == 10 and capped.tree.cut == "max-nodes"
    with pytest.raises(UsageError):
        pipeline.tree(Request(PROMPT), TreeSpec(depth=0))


def test_a_min_prob_above_every_first_token_is_one_line_not_an_empty_tree() -> None:
    """--min-prob that removes every child of the prompt leaves no tree: refused, naming the
    likeliest first token and its probability, instead of an empty table and exit 0."""
    from tests.conftest import run_cli

    with pytest.raises(UsageError, match="likeliest"):
        pipeline.tree(Request(PROMPT), TreeSpec(depth=2, branch=3, min_prob=0.9999))
    proc = run_cli("tree", PROMPT, "--depth", "2", "--min-prob", "0.9999")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "lower --min-prob" in err, err
    assert "%" in err and proc.stdout == b""


def test_complete_finishes_each_leaf_greedily() -> None:
    run = pipeline.tree(Request(PROMPT), TreeSpec(depth=1, branch=2, complete=3))
    first = run.nodes[0]
    assert [t.text for t in first.completion] == [" capital", " of", " the"]
    texts = [tree_view.path_text(run, i) for i in tree_view.leaves(run)]
    assert texts[0] == " the capital of the"


def test_cli_outputs_render_and_cut_message(tmp_path: Path) -> None:
    saved, dot = tmp_path / "tree.json", tmp_path / "tree.dot"
    proc = run_cli("tree", PROMPT, "--depth", "3", "--branch", "2", "--max-nodes", "9", "--save", str(saved), "-o", str(dot))
    assert proc.returncode == 0, proc.stderr
    assert b"cut at --max-nodes 9" in proc.stderr and "most likely continuations" in proc.stdout.decode()
    run = Run.from_json(saved.read_text())
    assert run.kind == "tree" and len(run.nodes) == 9
    again = tmp_path / "again.dot"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == dot.read_bytes()  # a saved tree re-renders byte for byte
    assert dot.read_text().count("penwidth=\"2.50\"") == 3  # the greedy path, highlighted
    data = json.loads(saved.read_text())
    assert data["tree"]["depth"] == 3 and len(data["nodes"]) == 9


def test_branch_from_a_saved_run(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    assert run_cli("predict", PROMPT, "-n", "4", "--save", str(saved), "-q").returncode == 0
    proc = run_cli("tree", "--from", str(saved), "--step", "1", "--token", "3", "--depth", "2", "--branch", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert run.prompt == PROMPT + " Paris"  # the third alternative at step 1
    prompt_ids = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX).llm.tokenize(PROMPT.encode())
    paris = Run.from_json(saved.read_text()).steps[0].alternatives[2].id
    logits, lse, _ = fresh_logprobs(prompt_ids, [paris])  # type: ignore[list-item]
    first = run.nodes[0]
    assert first.token.logprob == pytest.approx(float(logits[first.token.id]) - lse, abs=1e-4)  # type: ignore[index]
    bad = run_cli("tree", "--from", str(saved), "--step", "9")
    assert bad.returncode == 2 and b"--step must be between 1 and 4" in bad.stderr


def test_openai_chat_api_refuses_clearly() -> None:
    proc = run_cli("tree", "x", "-m", "gpt-4.1-mini")
    assert proc.returncode == 2 and b"cannot continue from a forced prefix" in proc.stderr


def test_completions_server_grows_the_same_tree(llama_server: str) -> None:
    remote = pipeline.tree(Request(PROMPT, model="gemma-3-270m", base_url=llama_server), TreeSpec(depth=2, branch=3))
    here = pipeline.tree(Request(PROMPT), TreeSpec(depth=2, branch=3))
    assert [n.token.text for n in sorted(remote.nodes, key=lambda n: -n.cum_logprob)][:6] == \
        [n.token.text for n in sorted(here.nodes, key=lambda n: -n.cum_logprob)][:6]
    for a, b in zip(sorted(remote.nodes, key=lambda n: -n.cum_logprob)[:6], sorted(here.nodes, key=lambda n: -n.cum_logprob)[:6]):
        assert math.isclose(a.cum_logprob, b.cum_logprob, abs_tol=2e-2)
    assert remote.tree.requests == 1 + 3


def test_parallel_tree_decodes_children_together_and_says_so(tmp_path: Path) -> None:
    """tree --parallel: the same tree (same tokens on the likely paths, the same number of evaluated
    tokens, every leaf completed), figures within llama.cpp's batch rounding, and labelled."""
    from tokviz.run.generation import Generation

    plan = pipeline.plan(Generation(top_k=3, max_tokens=3), "The capital of France is")
    serial = pipeline.tree(plan, TreeSpec(depth=3, branch=3, complete=3))
    together = pipeline.tree(plan, TreeSpec(depth=3, branch=3, complete=3, parallel=True))
    assert len(together.nodes) == len(serial.nodes) == 3 + 9 + 27
    assert together.tree.evaluated_tokens == serial.tree.evaluated_tokens  # type: ignore[union-attr]
    assert "decoded together" in (together.tree.approximation or "") and serial.tree.approximation is None  # type: ignore[union-attr]
    # per token, within what llama.cpp's batch shapes move a logprob (measures.noise: measured, not guessed)
    here = {tree_view.path_text(serial, i, with_completion=False): n.token.logprob for i, n in enumerate(serial.nodes)}
    there = {tree_view.path_text(together, i, with_completion=False): n.token.logprob for i, n in enumerate(together.nodes)}
    assert [n.token.text for n in together.nodes if n.depth == 1] == [n.token.text for n in serial.nodes if n.depth == 1]
    shared = set(here) & set(there)
    assert len(shared) >= 0.8 * len(here)  # near-ties in a top 3 may swap a child, and its subtree with it
    assert all(there[p] == pytest.approx(here[p], abs=noise.DECODE_MAX) for p in shared)
    assert all(len(n.completion) == 3 for n in together.nodes if n.depth == 3)
    out = tmp_path / "t.json"
    proc = run_cli("tree", "The capital of France is", "--depth", "2", "--branch", "2", "--parallel", "2", "--save", str(out), "-q")
    assert proc.returncode == 0 and "decoded together" in json.loads(out.read_text())["tree"]["approximation"]


def test_parallel_tree_holds_long_completions_of_a_whole_group() -> None:
    """A group's leaves (branch × branch of them) completed in lockstep hold all their cells at once:
    the cursor's context is sized for it (depth 2 × branch 3 with --complete 200 once failed to decode)."""
    from tokviz.run.generation import Generation

    plan = pipeline.plan(Generation(top_k=3, max_tokens=2), "The capital of France is")
    run = pipeline.tree(plan, TreeSpec(depth=2, branch=3, complete=200, parallel=True))
    assert len(run.nodes) == 12 and all(len(n.completion) > 50 for n in run.nodes if n.depth == 2)
