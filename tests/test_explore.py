"""`tokviz explore`: the exploration tree, its session over the real embedded model, the app's
security over real HTTP (uvicorn on 127.0.0.1), the page in real Chromium, and the command as a
real process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import fakes
from tests.conftest import run_cli, tokviz_cmd
from tokviz import pipeline
from tokviz.explore.exploration import Exploration
from tokviz.explore.server import Server
from tokviz.explore.session import Session
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Continuation
from tokviz.run import Branch, Run, RunKind, Step, Token
from tokviz.run.generation import Generation

PROMPT = "The cat sat on the"


def tok(text: str, logprob: float, id_: int) -> Token:
    return Token(text=text, raw=text.encode(), logprob=logprob, id=id_)


A, B, C, D = tok(" a", -0.5, 1), tok(" b", -1.0, 2), tok(" c", -2.0, 3), tok(" d", -3.0, 4)


# --- the exploration tree (pure) ------------------------------------------------------------------

def test_alternatives_become_siblings_and_a_shared_path_is_not_repeated() -> None:
    ex = Exploration("p", 3)
    first = ex.open_branch(-1, Branch(tip=-1))
    for step in (Step(chosen=A, alternatives=(A, B, C)), Step(chosen=B, alternatives=(B, A, D))):
        ex.grow(first, step)
    assert [n.token.text for n in ex.nodes] == [" a", " b", " c", " b", " a", " d"]
    assert [n.parent for n in ex.nodes] == [-1, -1, -1, 0, 0, 0]
    assert ex.branches[0].tip == 3 and ex.nodes[3].cum_logprob == pytest.approx(-1.5)
    # a second branch through the same first token reuses its node and its alternatives
    second = ex.open_branch(0, Branch(tip=0))
    ex.grow(second, Step(chosen=D, alternatives=(B, A, D)))
    assert len(ex.nodes) == 6 and ex.branches[1].tip == 5 and ex.path(5) == [0, 5]
    # a sampled token outside the alternatives joins them
    ex.grow(second, Step(chosen=tok(" z", -7.0, 9), alternatives=(A,)))
    assert ex.nodes[-1].token.text == " z" and ex.nodes[-1].parent == 5


def test_pruning_keeps_what_the_other_branches_need() -> None:
    ex = Exploration("p", 2)
    b0 = ex.open_branch(-1, Branch(tip=-1))
    for chosen, alt in ((A, B), (A, C), (C, D)):
        ex.grow(b0, Step(chosen=chosen, alternatives=(chosen, alt)))
    # b1 forks at the second position's alternative and runs two tokens
    fork = ex.child(0, C)
    b1 = ex.open_branch(fork, Branch(tip=fork))
    ex.grow(b1, Step(chosen=B, alternatives=(B, D)))
    ex.grow(b1, Step(chosen=D, alternatives=(D, A)))
    before = len(ex.nodes)
    ex.prune(b1)
    assert len(ex.branches) == 1 and len(ex.nodes) == before - 4  # b1's two positions (2 nodes each) are gone
    assert [n.token.text for n in ex.nodes] == [" a", " b", " a", " c", " c", " d"]
    assert ex.nodes[ex.branches[0].tip].token.text == " c"
    assert all(n.parent < i for i, n in enumerate(ex.nodes))
    with pytest.raises(Exception, match="last branch"):
        ex.prune(0)


def test_an_exploration_saves_as_a_tree_run_that_renders_and_reopens(tmp_path: Path) -> None:
    ex = Exploration("p", 2)
    b0 = ex.open_branch(-1, Branch(tip=-1))
    ex.grow(b0, Step(chosen=A, alternatives=(A, B)))
    ex.close_branch(b0, "length")
    b1 = ex.open_branch(1, Branch(tip=1, temperature=0.8, top_k=40, top_p=0.9, seed=7))
    ex.grow(b1, Step(chosen=C, alternatives=(C, D)))
    ex.close_branch(b1, "stop")
    run = ex.to_run(provider="local", model="gemma-3-270m", params=pipeline.plan(Generation(top_k=2), "p").request.params)
    path = tmp_path / "e.json"
    path.write_text(run.to_json(), encoding="utf-8")
    again = Run.from_json(path.read_text(encoding="utf-8"))
    assert again.kind is RunKind.TREE and again.tree is not None and again.tree.branches == run.tree.branches  # type: ignore[union-attr]
    assert Exploration.from_run(again).state() == ex.state()
    assert json.loads(path.read_text())["schema_version"] == 2
    result = run_cli("render", str(path), "-o", str(tmp_path / "e.svg"))
    assert result.returncode == 0 and b"<svg" in (tmp_path / "e.svg").read_bytes()


def test_a_branch_pointing_outside_the_tree_is_refused_when_read(tmp_path: Path) -> None:
    ex = Exploration("p", 2)
    ex.grow(ex.open_branch(-1, Branch(tip=-1)), Step(chosen=A, alternatives=(A, B)))
    data = json.loads(ex.to_run(provider="local", model="m", params=pipeline.plan(Generation(), "p").request.params).to_json())
    data["tree"]["branches"][0]["tip"] = 99
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = run_cli("render", str(path))
    assert result.returncode == 1 and b"points outside the tree" in result.stderr and b"Traceback" not in result.stderr


def test_a_predict_run_opens_as_one_branch(small_run: Run) -> None:
    ex = Exploration.from_run(small_run)
    assert len(ex.branches) == 1 and [ex.nodes[i].token for i in ex.path(ex.branches[0].tip)] == [s.chosen for s in small_run.steps]


# --- the app over real HTTP, on the deterministic test provider ------------------------------------

@contextmanager
def serving(session: Session) -> Iterator[Server]:
    server = Server(session)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        session.close()


def call(server: Server, method: str, path: str, body: Any = None, *, token: str | None = "default",
         headers: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    sent = {"Host": f"127.0.0.1:{server.port}"}
    if body is not None:
        sent["Content-Type"] = "application/json"
    if token is not None:
        sent["X-Tokviz-Token"] = server.token if token == "default" else token
    sent.update(headers or {})
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=sent)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def events(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line]


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with fakes.registered():
        monkeypatch.setenv("TOKVIZ_FAKE_DELAY", "0.02")
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=4, top_k=3, raw=True), "Once"))
        session.first_run()
        with serving(session) as server:
            yield server


def test_every_request_needs_the_session_token(fake_app: Server) -> None:
    for path in ("/", "/api/state", "/graph.svg", "/exploration.json"):
        assert call(fake_app, "GET", path, token=None)[0] == 403
        assert call(fake_app, "GET", path, token="wrong")[0] == 403
        assert call(fake_app, "GET", f"{path}?token={fake_app.token}", token=None)[0] == 200
    status, _, body = call(fake_app, "POST", "/api/branch", {"node": 0}, token=None)
    assert status == 403 and b"token" in body
    assert call(fake_app, "GET", "/nowhere")[0] == 404
    assert fake_app.url.startswith(f"http://127.0.0.1:{fake_app.port}/?token=")


def test_a_foreign_host_or_a_cross_site_origin_is_refused(fake_app: Server) -> None:
    port = fake_app.port
    assert call(fake_app, "GET", "/api/state", headers={"Host": f"evil.example:{port}"})[0] == 403  # DNS rebinding
    assert call(fake_app, "GET", "/api/state", headers={"Host": f"localhost:{port}"})[0] == 200
    status, _, body = call(fake_app, "POST", "/api/branch", {"node": 0}, headers={"Origin": "http://evil.example"})
    assert status == 403 and b"cross-site" in body
    assert call(fake_app, "GET", "/api/state", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    # a form post (no preflight in a browser) is not JSON: refused before it is read
    status, _, _ = call(fake_app, "POST", "/api/cancel", None, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403


def test_bad_settings_get_one_line_and_run_nothing(fake_app: Server) -> None:
    for body, said in (({"node": 0, "n": 0}, b"n must be between 1"), ({"node": 0, "temperature": "hot"}, b"temperature must be a number"),
                       ({"node": 999}, b"no node 999"), ({"node": 0, "top_p": 0}, b"top_p must be above 0"),
                       ([1, 2], b"JSON object"), ({"node": True}, b"whole number")):
        status, _, data = call(fake_app, "POST", "/api/branch", body)
        assert status == 400 and said in data and b"\n" not in data, body
    assert len(json.loads(call(fake_app, "GET", "/api/state")[2])["branches"]) == 1


def test_the_page_runs_only_its_own_script(fake_app: Server) -> None:
    status, headers, body = call(fake_app, "GET", "/")
    csp = headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert status == 200 and "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert f'<script nonce="{nonce}">'.encode() in body and b"innerHTML" not in body
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def test_a_branch_streams_its_tokens_and_joins_the_tree(fake_app: Server) -> None:
    state = json.loads(call(fake_app, "GET", "/api/state")[2])
    alt = next(i for i, n in enumerate(state["nodes"]) if n["p"] == -1 and i != state["branches"][0]["path"][0])
    status, headers, data = call(fake_app, "POST", "/api/branch", {"node": alt, "n": 3})
    got = events(data)
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert [e["event"] for e in got] == ["branch", "token", "token", "token", "done", "state"]
    assert got[-2] == {"event": "done", "branch": 1, "finish": "length", "tokens": 3}
    state = json.loads(call(fake_app, "GET", "/api/state")[2])
    branch = state["branches"][1]
    assert branch["fork"] == alt and branch["path"][0] == alt and len(branch["path"]) == 4
    # the fake's greedy continuation of that text, exactly
    text = "Once" + state["nodes"][alt]["label"].replace("␣", " ")
    for piece in branch["pieces"][1:]:
        expected = fakes.distribution(text, 1)[0].text
        assert piece == expected
        text += expected


def test_a_long_continuation_can_be_cancelled(fake_app: Server) -> None:
    out: dict[str, Any] = {}

    def long() -> None:
        out["events"] = events(call(fake_app, "POST", "/api/branch", {"node": 0, "n": 500})[2])

    worker = threading.Thread(target=long)
    worker.start()
    time.sleep(0.3)
    status, _, data = call(fake_app, "POST", "/api/cancel", {})
    worker.join(30)
    assert status == 200 and json.loads(data)["cancelled"] == 1
    done = next(e for e in out["events"] if e["event"] == "done")
    assert done["finish"] == "cancelled" and 0 < done["tokens"] < 500
    state = json.loads(call(fake_app, "GET", "/api/state")[2])
    assert state["branches"][1]["finish"] == "cancelled" and not state["busy"]


def test_concurrent_clicks_are_serialised(fake_app: Server) -> None:
    state = json.loads(call(fake_app, "GET", "/api/state")[2])
    greedy = set(state["branches"][0]["path"])  # continuing on the greedy path would extend it instead
    forks = [i for i, n in enumerate(state["nodes"]) if n["d"] <= 2 and i not in greedy][:5]
    threads = [threading.Thread(target=call, args=(fake_app, "POST", "/api/branch", {"node": f, "n": 4})) for f in forks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    state = json.loads(call(fake_app, "GET", "/api/state")[2])
    assert sorted(b["fork"] for b in state["branches"][1:]) == sorted(forks)
    for b in state["branches"][1:]:  # each equals the fake's greedy continuation of its own fork's text
        text = "Once" + "".join(b["pieces"][: state["nodes"][b["fork"]]["d"]])
        for piece in b["pieces"][state["nodes"][b["fork"]]["d"]:]:
            assert piece == fakes.distribution(text, 1)[0].text
            text += piece


def test_pruning_over_the_api(fake_app: Server) -> None:
    call(fake_app, "POST", "/api/branch", {"node": 1, "n": 2})
    status, _, data = call(fake_app, "POST", "/api/prune", {"branch": 1})
    assert status == 200 and len(json.loads(data)["branches"]) == 1
    status, _, data = call(fake_app, "POST", "/api/prune", {"branch": 0})
    assert status == 400 and b"last branch" in data


def test_a_model_that_says_nothing_is_a_failure_not_an_empty_exploration(monkeypatch: pytest.MonkeyPatch) -> None:
    with fakes.registered():
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=2, raw=True), "Once"))
        try:
            session.first_run()
            monkeypatch.setenv("TOKVIZ_FAKE_SILENT", "1")
            b = session.branch(1, Continuation(max_tokens=4))  # a chosen alternative, then the end: kept
            assert session.exploration.branches[b].tip == 1 and session.exploration.branches[b].finish == "stop"
        finally:
            session.close()
        silent = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=2, raw=True), "Once"))
        try:
            with pytest.raises(ProviderError, match="generated nothing"):
                silent.first_run()
        finally:
            silent.close()


def test_an_edited_prompt_starts_again_and_the_old_exploration_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = tmp_path / "walk.json"
    with fakes.registered():
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=2, raw=True), "Once"), save=save)
        session.first_run()
        with serving(session) as server:
            call(server, "POST", "/api/branch", {"node": 1, "n": 2})
            got = events(call(server, "POST", "/api/prompt", {"prompt": "Twice"})[2])
            assert [e["event"] for e in got][-2:] == ["done", "state"]
            state = json.loads(call(server, "GET", "/api/state")[2])
            assert state["prompt"] == "Twice" and len(state["branches"]) == 1
            assert call(server, "POST", "/api/prompt", {"prompt": "  "})[0] == 400
    old = Run.from_json((tmp_path / "walk-1.json").read_text())
    assert old.prompt == "Once" and len(old.tree.branches) == 2  # type: ignore[union-attr]
    assert Run.from_json(save.read_text()).prompt == "Twice"


@pytest.mark.parametrize(("args", "said"), [
    (("--provider", "replay"), b"cannot explore"),
    (("-m", "gpt-4.1-mini"), b"cannot grow a tree or explore"),
    (("-m", "some-model", "--base-url", "http://127.0.0.1:9/v1", "--dialect", "lmstudio"), b"no log-probabilities on /v1/completions"),
])
def test_providers_that_cannot_continue_a_prefix_are_refused(args: tuple[str, ...], said: bytes) -> None:
    result = run_cli("explore", PROMPT, "--no-browser", *args)
    assert result.returncode in (1, 2) and said in result.stderr and result.stderr.count(b"\n") == 1


# --- the real embedded model ------------------------------------------------------------------------

def tree_from(tmp_path: Path, step: int, token: int, n: int) -> list[int]:
    """The tokens a fresh `tree --from` gives after the same forced alternative: its first child
    and that child's greedy completion."""
    saved = tmp_path / "p.json"
    if not saved.exists():
        assert run_cli("predict", PROMPT, "-n", "6", "-k", "4", "--save", str(saved), "-q").returncode == 0
    out = tmp_path / f"t{step}-{token}.json"
    result = run_cli("tree", "--from", str(saved), "--step", str(step), "--token", str(token), "--depth", "1",
                     "--branch", "1", "--complete", str(n - 1), "--save", str(out), "-q")
    assert result.returncode == 0, result.stderr
    node = Run.from_json(out.read_text()).nodes[0]
    return [int(t.id) for t in (node.token, *node.completion) if t.id is not None]


def test_concurrent_clicks_on_the_real_model_equal_fresh_tree_from_runs(tmp_path: Path) -> None:
    picks = [(2, 2), (4, 3), (1, 4)]
    expected = {pick: tree_from(tmp_path, *pick, n=6) for pick in picks}
    saved = Run.from_json((tmp_path / "p.json").read_text())
    session = Session(pipeline.plan(Generation(max_tokens=6, top_k=4), PROMPT), exploration=Exploration.from_run(saved))
    ex = session.exploration
    path = ex.path(ex.branches[0].tip)
    forks = {}
    for step, token in picks:
        parent = path[step - 2] if step > 1 else -1
        forks[(step, token)] = ex.child(parent, saved.steps[step - 1].alternatives[token - 1])
    with serving(session) as server:
        threads = [threading.Thread(target=call, args=(server, "POST", "/api/branch", {"node": forks[p], "n": 6})) for p in picks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for pick in picks:
            branch = next(b for b in ex.branches if b.fork == forks[pick])
            ids = [int(ex.nodes[i].token.id) for i in ex.path(branch.tip)[ex.nodes[forks[pick]].depth:]]  # type: ignore[arg-type]
            assert ids == expected[pick], pick
        record = session.record()
    assert record.tree is not None and record.tree.evaluated_tokens is not None
    # KV reuse: each branch evaluates its fork and its own tokens, never the prompt again
    assert record.tree.evaluated_tokens <= sum(step + 6 for step, _ in picks)


def test_a_sampled_branch_is_recorded_and_remade_by_its_seed() -> None:
    session = Session(pipeline.plan(Generation(max_tokens=3, top_k=3), PROMPT))
    try:
        session.first_run()
        how = Continuation(max_tokens=8, temperature=0.9, top_k=20, top_p=0.95, seed=1234)
        one = session.branch(0, how)
        two = session.branch(0, how)
        ex = session.exploration
        assert ex.branches[one].seed == 1234 and ex.branches[one].top_k == 20 and ex.branches[one].temperature == 0.9
        assert ex.path(ex.branches[one].tip) == ex.path(ex.branches[two].tip)  # same seed, same tokens
        ranked = ex.branches[session.branch(0, Continuation(max_tokens=8, temperature=0.9, top_k=1, seed=5))]
        greedy = ex.branches[session.branch(0, Continuation(max_tokens=8))]
        assert ex.path(ranked.tip) == ex.path(greedy.tip)  # top-k 1 is greedy whatever the temperature
    finally:
        session.close()


def test_a_continuation_after_the_end_of_text_is_refused() -> None:
    session = Session(pipeline.plan(Generation(max_tokens=2, top_k=3), "Hello"))
    try:
        session.first_run()
        eos = session.cursor.m.llm.token_eos()  # type: ignore[attr-defined]
        end = session.exploration.child(-1, Token(text="<eos>", raw=b"", logprob=-9.0, id=eos))
        with pytest.raises(UsageError, match="ends its text"):
            session.branch(end, Continuation(max_tokens=3))
        assert len(session.exploration.branches) == 1
    finally:
        session.close()


def test_a_real_server_explores_too(llama_server: str) -> None:
    session = Session(pipeline.plan(Generation(model="gemma-3-270m", base_url=llama_server, raw=True, max_tokens=4, top_k=3),
                                    PROMPT))
    try:
        session.first_run()
        ex = session.exploration
        alt = next(i for i, n in enumerate(ex.nodes) if n.parent == -1 and i != ex.path(ex.branches[0].tip)[0])
        b = session.branch(alt, Continuation(max_tokens=4))
        assert len(ex.path(ex.branches[b].tip)) == 5
        record = session.record()
        assert record.tree is not None and record.tree.requests == 2 and "re-tokenized" in (record.tree.approximation or "")
    finally:
        session.close()


def test_a_real_server_continuation_streams_and_is_cancelled_between_tokens(llama_server: str) -> None:
    """On a server, a branch's tokens reach the page as the server streams them, and a cancel
    closes the request between tokens: a 300-token continuation stopped after its third token
    keeps those three, says "cancelled", and the server goes on answering the next request."""
    session = Session(pipeline.plan(Generation(model="gemma-3-270m", base_url=llama_server, raw=True, max_tokens=3, top_k=3),
                                    PROMPT))
    try:
        session.first_run()
        cancel = threading.Event()
        seen: list[float] = []

        def emit(event: dict[str, Any]) -> None:
            if event["event"] == "token":
                seen.append(time.perf_counter())
                if len(seen) == 3:
                    cancel.set()

        b = session.branch(-1, Continuation(max_tokens=300), emit=emit, cancel=cancel)
        ex = session.exploration
        assert ex.branches[b].finish == "cancelled" and len(seen) in (3, 4), len(seen)
        branch = ex.branches[b]  # the first run's 3 greedy tokens were known: it went on from their tip
        assert branch.fork == ex.branches[0].tip
        assert len(ex.path(branch.tip)) - len(ex.path(branch.fork)) == len(seen)
        after = session.branch(ex.path(ex.branches[0].tip)[0], Continuation(max_tokens=2, temperature=1.0, seed=3))
        assert ex.branches[after].finish == "length" and len(ex.path(ex.branches[after].tip)) == 3
    finally:
        session.close()


# --- the command, as a real process -------------------------------------------------------------

def start(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen([*tokviz_cmd(), "explore", *args, "--no-browser", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **env})
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, proc.stderr.read()  # type: ignore[union-attr]
    return proc, json.loads(line)


def test_the_command_saves_at_every_change_stops_on_a_signal_and_reopens(tmp_path: Path) -> None:
    save = tmp_path / "e.json"
    env = {"TOKVIZ_STATE_DIR": str(tmp_path / "state")}
    proc, info = start(PROMPT, "-n", "4", "--save", str(save), env=env)
    server = type("S", (), {"port": info["port"], "token": info["url"].split("token=")[1]})()
    assert Run.from_json(save.read_text()).tree.branches  # type: ignore[union-attr]  # saved before serving
    assert call(server, "POST", "/api/branch", {"node": 1, "n": 3})[0] == 200  # type: ignore[arg-type]
    assert len(Run.from_json(save.read_text()).tree.branches) == 2  # type: ignore[union-attr]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    # reopened: the same branches; without --save, what was explored is kept in the state folder
    proc, info = start("--from", str(save), env=env)
    server = type("S", (), {"port": info["port"], "token": info["url"].split("token=")[1]})()
    state = json.loads(call(server, "GET", "/api/state")[2])  # type: ignore[arg-type]
    assert len(state["branches"]) == 2 and state["prompt"] == PROMPT
    call(server, "POST", "/api/branch", {"node": 2, "n": 2})  # type: ignore[arg-type]
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as the terminal says to stop it: a normal end
    assert proc.wait(30) == 0
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    kept = list((tmp_path / "state" / "explorations").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in err and "Traceback" not in err
    assert "the explorer stopped" in err and "interrupted" not in err
    assert len(Run.from_json(kept[0].read_text()).tree.branches) == 3  # type: ignore[union-attr]


# --- the page, in real Chromium ---------------------------------------------------------------------

def open_app(browser: Any, server: Server, tmp_path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(accept_downloads=True)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url)
    page.wait_for_selector("#text .tok")
    return page, errors, requests


def test_the_page_branches_reshapes_saves_and_reopens(browser: Any, tmp_path: Path) -> None:
    session = Session(pipeline.plan(Generation(max_tokens=5, top_k=4), PROMPT))
    session.first_run()
    with serving(session) as server:
        page, errors, requests = open_app(browser, server, tmp_path)
        page.set_default_timeout(60_000)
        assert page.inner_text("#text").startswith(PROMPT)
        page.hover("#text .tok:nth-of-type(2)")  # the prompt is the first span
        rows = page.query_selector_all("#alts .alt")
        assert len(rows) == 4 and "model" in page.inner_text("#alts")
        before = [r.inner_text() for r in page.query_selector_all("#alts .alt .rw")]
        page.fill("#temperature", "1.5")
        page.dispatch_event("#temperature", "input")
        after = [r.inner_text() for r in page.query_selector_all("#alts .alt .rw")]
        assert before[0] == "100%" and after != before  # greedy puts all on the first; T=1.5 spreads it
        page.fill("#temperature", "0")
        page.dispatch_event("#temperature", "input")
        page.click("#text .tok:nth-of-type(2)")
        page.fill("#count", "5")
        page.click("#alts .alt:nth-of-type(3)")  # the third alternative: not the model's choice
        page.wait_for_selector("#branches .branch:nth-child(2)")
        page.wait_for_selector("#cancel", state="hidden")
        page.wait_for_selector("#status:not(:has-text('generating'))")
        ex = session.exploration
        assert len(ex.branches) == 2 and len(ex.path(ex.branches[1].tip)) == 1 + 5  # the fork (a first token) + 5 new
        shown = page.inner_text("#text")
        expected = PROMPT + "".join(ex.state()["branches"][1]["pieces"]).replace("\n", "↵\n")
        assert shown.replace("·", "") == expected.replace("·", "")
        # clicks on explored alternatives go to their branches when those hold the tokens asked
        # for: no model run, no duplicate branch
        page.fill("#count", "3")
        page.click("#text .tok:nth-of-type(2)")
        page.click("#alts .alt:nth-of-type(1)")  # the model's own first choice: branch 1's path
        page.wait_for_selector("#status:has-text('already explored')")
        page.wait_for_selector("#branches .branch:nth-child(1).current")
        assert len(ex.branches) == 2
        page.click("#alts .alt:nth-of-type(3)")  # explored a moment ago: branch 2
        page.wait_for_selector("#branches .branch:nth-child(2).current")
        assert len(ex.branches) == 2
        page.click("#alts .alt:nth-of-type(3)")  # a token the current branch holds (not its last): no new branch
        page.wait_for_selector("#status:has-text('already on branch 2')")
        assert len(ex.branches) == 2
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "download.json"
        download.value.save_as(saved)
        assert errors == [], errors
        origin = f"http://127.0.0.1:{server.port}/"
        assert requests and all(r.startswith(origin) for r in requests), requests
    reopened = Session(pipeline.plan(Generation(max_tokens=5, top_k=4), PROMPT),
                       exploration=Exploration.from_run(Run.from_json(saved.read_text())))
    with serving(reopened) as server:
        page, errors, _ = open_app(browser, server, tmp_path)
        assert len(page.query_selector_all("#branches .branch")) == 2 and errors == []


def test_hostile_text_is_shown_as_text(browser: Any, tmp_path: Path) -> None:
    hostile = '<img src=x onerror="window.pwned=1"></script><b>bold'
    with fakes.registered():
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=2, raw=True), hostile))
        session.first_run()
        with serving(session) as server:
            page, errors, requests = open_app(browser, server, tmp_path)
            assert page.inner_text("#text").startswith(hostile)
            assert page.evaluate("window.pwned === undefined") and page.query_selector("#text img") is None
            assert errors == [] and all("/x" not in r for r in requests)


def _asgi(app: Any, path: str, headers: dict[str, str], query: str = "") -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app, with no server and no model: (status, headers, body)."""
    import asyncio

    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "scheme": "http",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000), "root_path": "", "http_version": "1.1"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    worker = threading.Thread(target=asyncio.run, args=(app(scope, receive, send),))  # this thread may hold a loop
    worker.start()
    worker.join()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def test_the_guard_refuses_before_routing_and_knows_no_model() -> None:
    """The explorer's checks are one ASGI middleware: tested around a bare app, with no session.
    A foreign Host is refused before Starlette's router could redirect /api/state/ to it."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tokviz.explore.app import Guard

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("inner")

    app = Guard(Starlette(routes=[Route("/api/state", hello)]), token="s3cret", port=8000)
    good = {"host": "127.0.0.1:8000"}
    status, headers, body = _asgi(app, "/api/state", good, "token=s3cret")
    assert (status, body) == (200, b"inner") and headers["x-frame-options"] == "DENY"
    assert _asgi(app, "/api/state", {**good, "x-tokviz-token": "s3cret"})[0] == 200
    for path, hdrs, query in [("/api/state/", {"host": "evil.example"}, "token=s3cret"),  # was a 307 to evil.example
                              ("/api/state", {"host": "evil.example:8000"}, "token=s3cret"),
                              ("/api/state", good, "token=wrong"), ("/api/state", good, ""),
                              ("/api/state", {**good, "origin": "http://evil.example"}, "token=s3cret"),
                              ("/api/state", {**good, "sec-fetch-site": "cross-site"}, "token=s3cret")]:
        status, headers, body = _asgi(app, path, hdrs, query)
        assert status == 403 and body.startswith(b"forbidden:") and headers["cache-control"] == "no-store", (path, hdrs)
    assert _asgi(app, "/favicon.ico", {"host": "evil.example"})[0] == 403


def test_an_explored_greedy_path_is_not_run_again(fake: object) -> None:
    """Continuing greedily from a node a greedy branch already made (or forked at) gives that branch
    back with no model call when it holds enough tokens, and otherwise generates only what it lacks,
    from its tip: the saved file never holds the same greedy tokens twice."""
    session = Session(pipeline.plan(Generation(model="fake", max_tokens=4, top_k=3, raw=True), "Once"))
    try:
        session.first_run()
        ex = session.exploration
        on_path = ex.path(ex.branches[0].tip)
        events: list[dict[str, Any]] = []
        assert session.branch(on_path[1], Continuation(max_tokens=2), emit=events.append) == 0
        assert len(ex.branches) == 1 and events[0].get("existing") is True
        assert session.branch(on_path[0], Continuation(max_tokens=3)) == 0  # a node the first branch generated
        n_nodes = len(ex.nodes)
        more = session.branch(on_path[1], Continuation(max_tokens=4))  # 2 known past it, 2 more wanted
        assert more == 1 and ex.branches[1].fork == on_path[-1]
        assert len(ex.path(ex.branches[1].tip)) == len(on_path) + 2 and len(ex.nodes) > n_nodes
        alt = next(i for i, n in enumerate(ex.nodes) if n.parent == on_path[0] and i != on_path[1])
        fork = session.branch(alt, Continuation(max_tokens=3))
        assert fork == 2 and session.branch(alt, Continuation(max_tokens=3)) == 2 and len(ex.branches) == 3
        assert session.branch(alt, Continuation(max_tokens=3, temperature=1.0)) == 3  # a sample is a new branch
    finally:
        session.close()


def test_a_saved_exploration_renders_its_branches_as_coloured_text(browser: Any, tmp_path: Path, fake: object) -> None:
    """`render walk.json -o walk.html`: each explored branch as coloured text, where it forked, and
    each token's alternatives on hover (not a list of stubs with a legend that colours nothing)."""
    session = Session(pipeline.plan(Generation(model="fake", max_tokens=4, top_k=3, raw=True), "Once"))
    try:
        session.first_run()
        ex = session.exploration
        first = ex.path(ex.branches[0].tip)
        alt = next(i for i, n in enumerate(ex.nodes) if n.parent == first[0] and i != first[1])
        session.branch(alt, Continuation(max_tokens=3))
        session.branch(first[2], Continuation(max_tokens=2, temperature=1.0, seed=5))
        walk = tmp_path / "walk.json"
        walk.write_text(session.record().to_json())
        texts = ["".join(b["pieces"]) for b in ex.state()["branches"]]
    finally:
        session.close()
    assert run_cli("render", str(walk), "-o", str(tmp_path / "walk.html")).returncode == 0
    page = browser.new_page()
    page.goto((tmp_path / "walk.html").as_uri())
    sections = page.query_selector_all("section[id^=path-]")
    assert len(sections) == 3
    for section, text in zip(sections, texts):
        assert section.inner_text().replace("·", "").endswith(text.replace("\n", "↵\n").replace("·", ""))
    titles = page.inner_text("body")
    assert "3 explored branches" in titles and "from the prompt" in titles and "T=1 seed 5" in titles
    styled = page.query_selector_all("section#path-2 .tok")
    assert styled and all("background" in (t.get_attribute("style") or "") for t in styled)
    styled[0].hover()
    assert page.is_visible("#tip") and "%" in page.inner_text("#tip")
    page.close()


def until(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Wait for an expression to hold. Not `wait_for_function`: it evaluates its string with eval,
    which the page's Content-Security-Policy forbids (as it should)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


def test_the_token_graph_fits_the_page_and_shows_the_current_branch_first(browser: Any, tmp_path: Path) -> None:
    """The graph opens on the current branch (its chain and each step's alternatives), fitted to the
    box's width, not a huge image whose visible corner is blank; a click shows it at full size."""
    session = Session(pipeline.plan(Generation(max_tokens=30, top_k=4), PROMPT))
    session.first_run()
    with serving(session) as server:
        page, errors, _ = open_app(browser, server, tmp_path)
        page.click("#graph summary")
        until(page, "document.getElementById('graph-img').complete && document.getElementById('graph-img').naturalWidth > 0")
        img = page.query_selector("#graph-img")
        assert img is not None and "branch=0" in (img.get_attribute("src") or "")
        box = page.eval_on_selector("#graph .graph", "e => e.clientWidth")
        shown = page.eval_on_selector("#graph-img", "e => e.getBoundingClientRect().width")
        assert 0 < shown <= box + 1
        img.click()
        full = page.eval_on_selector("#graph-img", "e => e.getBoundingClientRect().width")
        natural = page.eval_on_selector("#graph-img", "e => e.naturalWidth")
        assert abs(full - natural) <= 2 and "zoom" in (img.get_attribute("class") or "")
        page.click("#graph-whole")
        until(page, "!document.getElementById('graph-img').src.includes('branch=')")
        until(page, "document.getElementById('graph-img').complete && document.getElementById('graph-img').naturalWidth > 0")
        natural = page.eval_on_selector("#graph-img", "e => e.naturalWidth")
        shown = page.eval_on_selector("#graph-img", "e => e.getBoundingClientRect().width")
        if natural > 2 * box:  # the whole exploration: never squeezed past reading, scrolled instead
            assert abs(shown - natural) <= 2
        else:
            assert shown <= box + 1
        assert errors == [], errors


def test_an_exploration_on_a_full_disk_is_kept_in_the_state_folder(full_disk: Path | None, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch, fake: object) -> None:
    """--save on a disk that is full: each autosave fails in one line (the page is told), the
    branches stay in memory, and at the end the whole exploration goes to $TOKVIZ_STATE_DIR."""
    import errno
    import io

    from rich.console import Console

    from tokviz.commands.explore import _keep
    from tokviz.ground import files

    if full_disk is None:  # no mount allowed: the same error, from the same OS call
        real = os.replace

        def no_space(src: Any, dst: Any) -> None:
            if "walk.json" in str(dst):
                raise OSError(errno.ENOSPC, "No space left on device")
            real(src, dst)

        monkeypatch.setattr(files.os, "replace", no_space)
        target = tmp_path / "walk.json"
    else:
        target = full_disk / "walk.json"
    monkeypatch.setenv("TOKVIZ_STATE_DIR", str(tmp_path / "state"))
    session = Session(pipeline.plan(Generation(model="fake", max_tokens=4, top_k=3, raw=True), "Once"), save=target)
    with pytest.raises(files.OutputError, match="disk is full"):
        session.first_run()
    ex = session.exploration
    with pytest.raises(files.OutputError):
        session.branch(ex.path(ex.branches[0].tip)[0] + 1, Continuation(max_tokens=2, temperature=1.0, seed=3))
    assert len(ex.branches) == 2  # in memory, whatever the disk said
    session.close()
    out = io.StringIO()
    _keep(session, Console(file=out, width=200))
    kept = list((tmp_path / "state" / "explorations").glob("*.json"))
    assert len(kept) == 1 and len(Run.from_json(kept[0].read_text()).tree.branches) == 2  # type: ignore[union-attr]
    assert "disk is full" in out.getvalue() and str(kept[0]) in out.getvalue()


def test_connections_that_send_nothing_are_closed_and_real_requests_still_answered(fake_app: Server) -> None:
    import socket

    from tokviz.explore.server import IDLE_S

    idle = [socket.create_connection(("127.0.0.1", fake_app.port), timeout=30) for _ in range(120)]
    try:
        assert call(fake_app, "GET", "/api/state")[0] == 200  # answered while they hang
        time.sleep(IDLE_S + 1.5)
        closed = 0
        for sock in idle:
            try:
                closed += sock.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(idle)
        assert call(fake_app, "GET", "/api/state")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_the_saved_exploration_and_its_graph_say_what_the_page_says_its_figures_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page header, the graph's caption and the saved record name the same meaning of the
    figures (the graph once said "not known" where the header said "before sampling")."""
    from dataclasses import replace as dc_replace

    from tokviz.run import figures as said

    with fakes.registered():
        from tokviz.providers import registry

        registry.register(dc_replace(fakes.SPEC, figures="before sampling"))
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=3, raw=True), "Once"))
        session.first_run()
        assert session.figures() == "before sampling"
        with serving(session) as fake_app:
            _figures_agree(fake_app, session, said)


def _figures_agree(fake_app: Server, session: Session, said: Any) -> None:
    record = json.loads(call(fake_app, "GET", "/exploration.json")[2])
    assert record["source"]["figures"] == session.figures()
    svg = call(fake_app, "GET", "/graph.svg?branch=0")[2].decode()
    assert said.say(session.figures()) in session.meta()
    assert html_unescape(svg).count(said.say(session.figures())) >= 1


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)
