"""`predict --json-schema`: the answer held to a schema on the embedded model (llama.cpp's grammar)
and on a real llama-server, every field's figures read from the run's own tokens, and every token
the grammar forced found again by an unconstrained reading of the same prefix."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.measures.fields import fields_of, forced
from tokviz.pipeline.structured import check, structured
from tokviz.run import Run
from tokviz.run.generation import Generation

pytest_plugins = ["pytester"]

PROMPT = "Review: The movie was wonderful.\nJSON:"
SCHEMAS: dict[str, dict[str, Any]] = {
    "enum": {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative", "neutral"]}},
             "required": ["sentiment"], "additionalProperties": False},
    "bounded integers": {"type": "object", "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}},
                         "required": ["stars"], "additionalProperties": False},
    "nested": {"type": "object", "properties": {"person": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                         "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"], "additionalProperties": False}}, "required": ["person"], "additionalProperties": False},
    "array": {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["fun", "sad", "long"]},
                                                        "minItems": 1, "maxItems": 3}},
              "required": ["tags"], "additionalProperties": False},
    "boolean and a short string": {"type": "object", "properties": {"ok": {"type": "boolean"},
                                                                     "note": {"type": "string", "maxLength": 10}},
                                   "required": ["ok", "note"], "additionalProperties": False},
}


def _run(schema: dict[str, Any], **gen: Any) -> Run:
    return pipeline.predict(structured(pipeline.plan(Generation(**{"max_tokens": 60, "top_k": 5, **gen}), PROMPT),
                                       check(schema)))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_a_constrained_answer_parses_and_validates(name: str) -> None:
    run = _run(SCHEMAS[name])
    answer = json.loads(run.text)
    jsonschema.validate(answer, SCHEMAS[name])
    assert run.finish_reason == "stop" and "structured_invalid" not in run.source
    assert json.loads(run.params.json_schema or "") == SCHEMAS[name] and "structured" in run.source
    assert Run.from_json(run.to_json()) == run  # forbidden marks and the schema survive the record


def test_sampled_answers_validate_too() -> None:
    for seed in range(3):
        run = _run(SCHEMAS["nested"], temperature=1.0, seed=seed)
        jsonschema.validate(json.loads(run.text), SCHEMAS["nested"])


def test_each_field_is_the_product_of_its_tokens() -> None:
    run = _run(SCHEMAS["nested"])
    found = fields_of(run)
    assert found.complete
    paths = {(f.kind, f.path) for f in found.fields}
    assert {("key", "person"), ("key", "person.name"), ("value", "person.name"), ("value", "person.age")} <= paths
    answer = json.loads(run.text)
    for f in found.fields:
        assert f.logprob == pytest.approx(math.fsum(run.steps[n].chosen.logprob for n in f.steps), abs=1e-9)
        assert f.weakest in f.steps and all(run.steps[f.weakest].chosen.logprob <= run.steps[n].chosen.logprob for n in f.steps)
        if f.kind == "value" and f.path == "person.age":
            assert int(f.text) == answer["person"]["age"]
        if f.kind == "value" and f.path == "person.name":
            assert f.text == answer["person"]["name"]
        spelled = "".join(run.steps[n].chosen.text for n in f.steps)
        assert f.text in spelled  # its tokens spell it (with at most the syntax glued to them)


def test_forced_tokens_are_where_the_unconstrained_model_wanted_another() -> None:
    """Read the same tokens again with no grammar (the prompt, then each chosen token, one at a time,
    as generation reads them): the model's own first choice differs from the chosen token exactly
    where a step is marked forced, and every figure is the model's own."""
    import numpy as np

    from tokviz.providers.local import models
    from tokviz.providers.local.engine import last_logits

    run = _run(SCHEMAS["enum"])
    m = models.probe(models.resolve_model_path(models.DEFAULT_MODEL, lambda _: None), None)
    m.llm.reset()
    m.llm.eval(m.llm.tokenize(PROMPT.encode(), add_bos=True, special=False))
    marked = [forced(s) for s in run.steps]
    for step, is_forced in zip(run.steps, marked):
        row = last_logits(m).astype(np.float64)
        lse = row.max() + np.log(np.exp(row - row.max()).sum())
        assert step.chosen.logprob == pytest.approx(row[step.chosen.id] - lse, abs=1e-4)  # the model's own figure
        assert is_forced == (int(np.argmax(row)) != step.chosen.id), step.chosen.text
        for a in step.alternatives:
            assert not (a.forbidden and a.id == step.chosen.id)
        m.llm.eval([step.chosen.id])
    m.prompt = None
    assert any(marked) and not all(marked)


def test_a_cut_answer_shows_the_fields_it_has_and_where_it_stopped() -> None:
    run = _run(SCHEMAS["nested"], max_tokens=8)
    found = fields_of(run)
    assert not found.complete and "ends at character" in (found.stopped or "")
    assert found.fields and found.fields[0].path == "person"
    assert "structured_invalid" in run.source and "--max-tokens" in run.source["structured_invalid"]


def test_the_command_shows_the_fields(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SCHEMAS["enum"]))
    page = tmp_path / "a.html"
    proc = run_cli("predict", PROMPT, "--json-schema", str(schema), "-n", "30", "-o", str(page), width=140)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "sentiment" in out and "forced: model" in out and "⊘" in out
    assert 'aria-label="fields"' in page.read_text()
    doc = json.loads(run_cli("predict", PROMPT, "--json-schema", str(schema), "-n", "30", "--json").stdout)
    assert doc["fields"]["complete"] and {f["path"] for f in doc["fields"]["fields"]} == {"sentiment"}
    assert doc["params"]["json_schema"] and doc["schema_version"] == 3
    any_object = json.loads(run_cli("predict", PROMPT, "--json-object", "-n", "40", "--json").stdout)
    assert any_object["text"].startswith("{") and json.loads(any_object["params"]["json_schema"]) == {"type": "object"}
    if any_object["fields"]["complete"]:
        assert isinstance(json.loads(any_object["text"]), dict)
    else:  # cut by -n: said so, in the fields and in the run
        assert "structured_invalid" in any_object["source"]


@pytest.mark.parametrize(("content", "says"), [
    ('{"type": "objekt"}', "not valid JSON Schema at type"),
    ('{"type": "object", "properties": {"a": {"minimum": "x"}}}', "not valid JSON Schema at properties/a/minimum"),
    ("[1, 2", "is not JSON (line 1"),
    ('"a string"', "a schema is an object"),
])
def test_a_bad_schema_is_one_line_naming_the_place(tmp_path: Path, content: str, says: str) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(content)
    proc = run_cli("predict", PROMPT, "--json-schema", str(schema))
    assert proc.returncode == 2 and says in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def test_a_provider_that_cannot_constrain_is_refused(fake: object) -> None:
    proc = run_cli("predict", PROMPT, "--json-object", "-m", "fake")  # tests/fakes.py declares no STRUCTURED
    assert proc.returncode == 2 and "cannot constrain its answer" in proc.stderr.decode()


@pytest.mark.parametrize("name", ["enum", "nested", "array"])
def test_transformers_holds_its_answer_through_llguidance(name: str) -> None:
    """The same schemas on the float32 reference of the embedded model: valid answers, the model's own
    figures (forced steps found as on the embedded model), forbidden alternatives marked."""
    run = _run(SCHEMAS[name], provider="transformers")
    jsonschema.validate(json.loads(run.text), SCHEMAS[name])
    assert "llguidance" in run.source["structured"] and "structured_invalid" not in run.source
    assert any(a.forbidden for s in run.steps for a in s.alternatives) and any(forced(s) for s in run.steps)


def test_llama_server_holds_its_answer_to_the_schema(llama_cpp_server: str) -> None:
    """llama.cpp's own server, through response_format: the answer validates, its figures are the
    model's own (read from the raw logits, as its source says), and the request carried the schema."""
    run = pipeline.predict(structured(pipeline.plan(Generation(base_url=llama_cpp_server, model="gemma-3-270m", chat=True,
                                                               max_tokens=60, top_k=3),
                                                    "Review: The movie was wonderful. Answer in JSON."),
                                      check(SCHEMAS["nested"])))
    jsonschema.validate(json.loads(run.text), SCHEMAS["nested"])
    assert "before the grammar" in run.source["structured"]
    assert fields_of(run).complete


def test_the_request_body_carries_the_schema_per_dialect() -> None:
    from tokviz.providers.base import Request
    from tokviz.providers.openai import bodies, dialects
    from tokviz.run import Params

    params = Params(mode="chat", json_schema=json.dumps(SCHEMAS["enum"]))
    _, body, _, source = bodies.request_body(Request("hi", params=params), params, dialects.DIALECTS["vllm"], openai=False)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMAS["enum"],
                                                                              "strict": True}}
    assert "renormalised" in source["structured"]
    params = Params(mode="chat", json_schema='{"type":"object"}')
    _, body, _, source = bodies.request_body(Request("hi", params=params), params, dialects.DIALECTS["openai"], openai=True)
    assert body["response_format"] == {"type": "json_object"} and "not known" in source["structured"]


def test_llama_cpp_pythons_server_takes_the_schema_its_own_way(llama_server: str) -> None:
    """llama-cpp-python's server refuses response_format json_schema (500: 'text' or 'json_object'):
    it is sent `{"type": "json_object", "schema": …}`, its only structured type, and validates."""
    run = pipeline.predict(structured(pipeline.plan(Generation(base_url=llama_server, model="gemma-3-270m", chat=True,
                                                               max_tokens=60, top_k=3),
                                                    "Review: The movie was wonderful. Answer in JSON."),
                                      check(SCHEMAS["enum"])))
    jsonschema.validate(json.loads(run.text), SCHEMAS["enum"])
    assert run.source["dialect"] == "llama-cpp-python" and "raw logits it stored" in run.source["structured"]


def test_diff_names_the_field_that_changed(tmp_path: Path) -> None:
    from dataclasses import replace

    from tokviz.measures.compare import Tolerance, Verdict, compare_records

    run = _run(SCHEMAS["nested"])
    same = compare_records(run, run, Tolerance())[0]
    assert same.verdict is Verdict.IDENTICAL and same.extra["fields"]["a"] == same.extra["fields"]["b"]
    # the same answer, its age token made far less likely: the field is named, with both figures
    age = next(f for f in fields_of(run).fields if f.path == "person.age" and f.kind == "value")
    steps = list(run.steps)
    n = age.steps[0]
    steps[n] = replace(steps[n], chosen=replace(steps[n].chosen, logprob=steps[n].chosen.logprob - 3.0))
    moved = compare_records(run, replace(run, steps=tuple(steps)), Tolerance())[0]
    assert moved.verdict is Verdict.CHANGED and moved.reasons[0].startswith("the field person.age")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(run.to_json())
    b.write_text(replace(run, steps=tuple(steps)).to_json())
    proc = run_cli("diff", str(a), str(b))
    assert proc.returncode == 1 and "the field person.age" in proc.stdout.decode()
    proc = run_cli("check", str(a))  # asked again, the same answer
    assert proc.returncode == 0, proc.stdout


def test_the_notebook_and_the_pytest_plugin_take_a_schema(pytester: pytest.Pytester) -> None:
    import tokviz

    run = tokviz.predict(PROMPT, json_schema=SCHEMAS["enum"], max_tokens=30)
    jsonschema.validate(json.loads(run.text), SCHEMAS["enum"])
    pytester.makepyfile(test_s=f"""
def test_sentiment(tokviz_golden):
    tokviz_golden.check({PROMPT!r}, json_schema={SCHEMAS["enum"]!r}, max_tokens=30)
""")
    pytester.runpytest_subprocess("--tokviz-update").assert_outcomes(passed=1, warnings=1)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_batch_line_may_carry_a_schema(tmp_path: Path) -> None:
    lines = [{"id": "r1", "prompt": PROMPT, "max_tokens": 30, "json_schema": SCHEMAS["enum"]},
             {"id": "bad", "prompt": PROMPT, "json_schema": {"type": "objekt"}},
             {"id": "cut", "prompt": PROMPT, "max_tokens": 4, "json_schema": SCHEMAS["nested"]},
             {"id": "plain", "prompt": "The capital of France is", "max_tokens": 3}]
    source = tmp_path / "p.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(source), "-o", str(out), "-f", "json", "--parallel", "4")
    assert proc.returncode == 1  # the bad schema fails its line only
    items = {i["id"]: i for i in json.loads((out / "index.json").read_text())["items"]}
    assert items["bad"]["status"] == "failed" and "not valid JSON Schema at type" in items["bad"]["error"]
    r1 = Run.from_json((out / "r1.json").read_text())
    jsonschema.validate(json.loads(r1.text), SCHEMAS["enum"])  # held to it even with --parallel (decoded alone)
    assert "structured_invalid" in Run.from_json((out / "cut.json").read_text()).source
    assert items["plain"]["status"] == "ok"


def test_the_graph_labels_the_fields(tmp_path: Path) -> None:
    from tokviz.views import export

    run = _run(SCHEMAS["enum"])
    dot = export.render(run, "dot").decode()
    value = next(f for f in fields_of(run).fields if f.kind == "value")
    assert f"◆ sentiment {__import__('tokviz.views.colors', fromlist=['percent']).percent(value.prob)}" in dot
    assert "⊘ " in dot and "forced" in dot and "forbidden by the schema's grammar" in dot
    assert export.render(run, "svg").startswith(b"<?xml") or b"<svg" in export.render(run, "svg")[:400]
    plain = pipeline.predict(pipeline.plan(Generation(max_tokens=5), PROMPT))
    assert "◆" not in export.render(plain, "dot").decode()  # no schema, no marks: the old bytes


def test_batch_json_schema_holds_every_line_that_names_none(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SCHEMAS["enum"]))
    source = tmp_path / "p.txt"
    source.write_text(PROMPT.replace("\n", " ") + "\nReview: The food was cold. JSON:\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(source), "-o", str(out), "-f", "json", "-n", "30", "--json-schema", str(schema))
    assert proc.returncode == 0, proc.stderr
    for item in json.loads((out / "index.json").read_text())["items"]:
        run = Run.from_json((out / item["files"]["json"]).read_text())
        jsonschema.validate(json.loads(run.text), SCHEMAS["enum"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 3}')
    refused = run_cli("batch", str(source), "-o", str(tmp_path / "o2"), "--json-schema", str(bad))
    assert refused.returncode == 2 and "not valid JSON Schema" in refused.stderr.decode()
