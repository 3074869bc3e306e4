"""`--json-schema FILE` / `--json-object`: a plan whose answer is constrained to JSON.

The schema is checked here, before anything is loaded or sent: it must be JSON, and valid JSON
Schema (jsonschema's meta-schema check, Draft 2020-12), or it is refused in one line naming the
place. It is recorded in the run (`params.json_schema`, canonical JSON), so a saved run says what
its answer was held to; providers that cannot constrain are refused by their spec.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tokviz.ground.errors import UsageError
from tokviz.pipeline.plans import Plan
from tokviz.providers.base import Capability
from tokviz.run import Run

ANY_OBJECT = {"type": "object"}


def read_schema(path: Path) -> dict[str, object]:
    """A schema file, as JSON, checked (one line naming the file and the place otherwise)."""
    from tokviz.ground.files import read_regular
    from tokviz.run import codec

    data = read_regular(path, "--json-schema")
    try:
        schema = codec.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UsageError(f"--json-schema {path} is not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"--json-schema {path} is not JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except ValueError as err:
        raise UsageError(f"--json-schema {path} is not JSON: {str(err)[:120]}") from None
    return check(schema, str(path))


def check(schema: object, where: str = "the schema") -> dict[str, object]:
    """`schema` if it is valid JSON Schema, else one line naming where it is wrong."""
    import jsonschema

    if not isinstance(schema, dict):
        raise UsageError(f"{where} is not a JSON Schema: a schema is an object, e.g. {{\"type\": \"object\"}}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        at = "/".join(str(p) for p in err.absolute_path) or "(the top)"
        raise UsageError(f"{where} is not valid JSON Schema at {at}: {err.message[:200]}") from None
    return schema


def structured(p: Plan, schema: dict[str, object] | None) -> Plan:
    """The plan with its answer constrained to `schema`, if the provider can constrain."""
    if schema is None:
        return p
    if not p.spec.can(Capability.STRUCTURED):
        raise UsageError(f"the {p.provider} provider cannot constrain its answer to a JSON schema",
                         hint="the embedded model and OpenAI-compatible servers can (docs/structured.md)")
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return replace(p, request=replace(p.request, params=replace(p.request.params, json_schema=text)))


def validated(run: Run) -> Run:
    """A run held to a schema, with its answer checked against it: one that does not parse or does
    not validate (cut by --max-tokens, or a bound the grammar could not hold) says so in its
    source, so it is never taken for a valid answer."""
    if run.params.json_schema is None or not isinstance(run, Run):
        return run
    import jsonschema

    from tokviz.run import codec

    try:
        answer = codec.loads(run.text)
    except ValueError as err:
        problem = f"the answer is not whole JSON ({str(err)[:120]})" + (
            ": --max-tokens cut it" if run.finish_reason == "length" else "")
    else:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(json.loads(run.params.json_schema))
                                                 .iter_errors(answer))
        if error is None:
            return run
        at = "/".join(str(p) for p in error.absolute_path) or "(the top)"
        problem = f"the answer does not validate against the schema at {at}: {error.message[:160]}"
    return replace(run, source={**run.source, "structured_invalid": problem})
