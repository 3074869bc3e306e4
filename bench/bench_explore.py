"""`tokviz explore` on the embedded model (issue 16), against llama.cpp's own `llama-bench` in the
same run:

- from a click on an alternative to the first new token drawn on the page, in real Chromium
  (goal: under 150 ms), also as a multiple of one llama-bench decode step;
- the cost of a branch with the KV cache of its shared prefix kept (the explorer's cursor) and
  without it (a fresh cursor: the prompt and the path read again), for a 300-token prompt.
"""

from __future__ import annotations

import argparse
import time

from bench.common import llama_bench, llama_tools, machine, median, publish
from tokviz import pipeline
from tokviz.explore.exploration import Exploration
from tokviz.explore.server import Server
from tokviz.explore.session import Session
from tokviz.providers.base import Continuation, TreeSpec
from tokviz.providers.local import models as local_models
from tokviz.run.generation import Generation

PROMPT = "The cat sat on the"
LONG = ("The history of the city of Paris begins with a small settlement on an island in the Seine. " * 16).strip()
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]


def page_latency(clicks: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    session = Session(pipeline.plan(Generation(max_tokens=12, top_k=5), PROMPT))
    session.first_run()
    server = Server(session)
    server.start()
    out = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_selector("#text .tok")
            page.fill("#count", "3")
            for n in range(clicks):
                spans = page.query_selector_all("#text .tok")
                spans[(n * 3) % min(len(spans), 12)].click()
                rows = page.query_selector_all("#alts .alt")
                rows[1 + n % (len(rows) - 1)].click()
                page.wait_for_selector("#cancel", state="hidden")
                page.wait_for_selector("#status:not(:has-text('generating'))")
                times = page.evaluate("window.tokvizTimes")
                out.append(times["first"] - times["click"])
            browser.close()
    finally:
        server.stop()
        session.close()
    return out


def branch_cost(repeats: int) -> tuple[float, float, int, int]:
    """Seconds to the first token of a branch forked 20 tokens into a 300-token prompt's
    continuation: with the explorer's cursor (shared prefix kept) and with a fresh one."""
    plan = pipeline.plan(Generation(max_tokens=24, top_k=5), LONG)
    session = Session(plan)
    session.first_run()
    ex: Exploration = session.exploration
    path = ex.path(ex.branches[0].tip)
    forks = [i for i, n in enumerate(ex.nodes) if n.depth == 20 and i != path[19]][:repeats]
    kept, fresh, reads = [], [], []
    for fork in forks:
        before = session.cursor.report()["evaluated_tokens"]  # type: ignore[attr-defined]
        t = time.perf_counter()
        session.branch(fork, Continuation(max_tokens=1))
        kept.append(time.perf_counter() - t)
        reads.append(session.cursor.report()["evaluated_tokens"] - before)  # type: ignore[attr-defined]
    for fork in forks:
        t = time.perf_counter()
        _, cursor = pipeline.open_cursor(plan, TreeSpec(depth=64, branch=5))
        cursor.goto(ex.tokens(fork))  # type: ignore[attr-defined]
        cursor.generate(Continuation(max_tokens=1), 5)  # type: ignore[attr-defined]
        fresh.append(time.perf_counter() - t)
        evaluated_fresh = cursor.report()["evaluated_tokens"] + cursor.report()["prompt_tokens"]
    session.close()
    return median(kept), median(fresh), int(median(reads)), evaluated_fresh


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--clicks", type=int, default=15)
    args = ap.parse_args()
    model = local_models.embedded_model_path(lambda _: None)
    tools = llama_tools()
    step_ms = 1000 / llama_bench(tools, model, generate=64)
    latencies = sorted(page_latency(args.clicks))
    p50, p90 = median(latencies), latencies[int(0.9 * (len(latencies) - 1))]
    kept, fresh, evaluated_kept, evaluated_fresh = branch_cost(5)
    lines = [
        f"`tokviz explore` on the embedded model, same run as `llama-bench` ({machine()}):",
        f"- click on an alternative → first new token drawn, real Chromium, {len(latencies)} clicks: median "
        f"**{p50:.0f} ms**, p90 {p90:.0f} ms, max {latencies[-1]:.0f} ms (goal < 150 ms); one llama-bench decode step "
        f"is {step_ms:.1f} ms, so the median is {p50 / step_ms:.1f} steps",
        f"- a branch forked 20 tokens into the continuation of a 300-token prompt, to its first token: "
        f"cache kept {kept * 1000:.0f} ms, fresh cursor {fresh * 1000:.0f} ms — **{fresh / kept:.1f}×** "
        f"cheaper with KV reuse (tokens evaluated: {evaluated_kept} with the cache kept, {evaluated_fresh} with a fresh cursor)",
    ]
    publish("explore", lines, args.write)


if __name__ == "__main__":
    main()
