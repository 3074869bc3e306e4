"""The Run record: deterministic JSON, equal round trip, clear errors on foreign or newer files."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import check_golden
from tokviz.ground.errors import ExitStatus, RunFileError
from tokviz.run import SCHEMA_VERSION, Params, Run, Step, Token


def test_json_round_trip_gives_an_equal_run(hostile_run: Run) -> None:
    assert Run.from_json(hostile_run.to_json()) == hostile_run


def test_json_is_deterministic_and_golden(small_run: Run) -> None:
    a = small_run.to_json()
    assert a == Run.from_json(a).to_json()
    data = json.loads(a)
    assert list(data)[:4] == ["schema", "schema_version", "tool_version", "kind"]
    check_golden("small_run.json", a.replace(small_run.tool_version, "VERSION").encode())


def test_bytes_survive_exactly() -> None:
    frag = "🙂".encode()[:2]
    run = Run("t", "m", "p", Params(), (Step(Token("\ufffd", frag, -0.1, 5)),))
    back = Run.from_json(run.to_json())
    assert back.steps[0].chosen.raw == frag
    assert back.text == "\ufffd"


def test_logprob_of_zero_probability_is_clamped_not_infinite() -> None:
    run = Run("t", "m", "p", Params(), (Step(Token("x", b"x", -math.inf)),))
    assert json.loads(run.to_json())["steps"][0]["chosen"]["logprob"] == -9999.0


def test_text_joins_split_characters(small_run: Run) -> None:
    assert small_run.text == " Paris.café"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"hello": 1}', "not a tokviz run"),
        ("[]", "not a tokviz run"),
        ('{"schema": "tokviz.run", "schema_version": "x"}', "no valid schema_version"),
        ('{"schema": "tokviz.run", "schema_version": 1, "steps": []}', "damaged tokviz run"),
    ],
)
def test_foreign_files_give_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(RunFileError) as info:
        Run.from_json(text, source="x.json")
    assert fragment in info.value.line()
    assert "\n" not in info.value.line()
    assert info.value.exit_status == ExitStatus.ERROR


def test_newer_schema_is_refused_with_the_fix(small_run: Run) -> None:
    data = json.loads(small_run.to_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(RunFileError) as info:
        Run.from_json(json.dumps(data), source="new.json")
    assert "newer tokviz" in info.value.line() and "upgrade" in info.value.line()
