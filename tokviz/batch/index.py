"""The batch's index: index.json and index.md, written from the state in input order, piece by
piece (a 100,000-prompt index is never whole in memory), with no timings, so a resumed batch ends
with the same index as an uninterrupted one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tokviz.batch.state import Row, State
from tokviz.ground.files import write_atomic_chunks
from tokviz.run import codec
from tokviz.run.tokens import safe

INDEX_SCHEMA = "tokviz.batch-index"

SHARD_AFTER = 2000  # past this many jobs, outputs go into 256 subfolders (file systems slow down on huge folders)


def write(state: State, out_dir: Path, formats: list[str], files: Callable[[str, list[str]], dict[str, str]]) -> None:
    """index.json and index.md from the state (`files(name, formats)`: a job's files by format)."""
    state.commit()
    counts = state.counts()
    head = {"schema": INDEX_SCHEMA, "schema_version": 1, "formats": formats, "summary": counts}
    opening = codec.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "items": ['

    def items_json() -> Iterator[bytes]:
        yield opening.encode("utf-8")
        for n, row in enumerate(state.rows()):
            item = codec.dumps(entry(row, formats, files), ensure_ascii=False)
            yield (("\n    " if n == 0 else ",\n    ") + item).encode("utf-8")
        yield b"\n  ]\n}\n"

    write_atomic_chunks(out_dir / "index.json", items_json())
    write_atomic_chunks(out_dir / "index.md", markdown_index((entry(r, formats, files) for r in state.rows()), counts))


def entry(row: Row, formats: list[str], files: Callable[[str, list[str]], dict[str, str]]) -> dict[str, Any]:
    """One job's item in the index."""
    item: dict[str, Any] = {"n": row.n, "id": row.id, "name": row.name, "prompt": row.prompt,
                            "model": row.model, "status": row.status}
    if row.status == "ok":
        item.update(provider=row.provider, text=row.text, tokens=row.tokens,
                    files=files(row.name, [f for f in formats if f in (row.formats or "").split(",")]))
        if row.summary:  # weighed answers: the winner (by summed logprob) and its share
            import json

            item["choices"] = json.loads(row.summary)
    if row.error and row.status != "ok":
        item["error"] = row.error
    return item


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (no markup, no line breaks, no pipes) and in a
    terminal (`cat index.md`: no escape sequence, bidi override or C1 code acts)."""
    text = safe(" ".join(text.split()))
    return re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", text)


def markdown_index(items: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[bytes]:
    """index.md, piece by piece: the table, then a section per graph (the items are read twice)."""
    head = ["# tokviz batch", "", f"{counts['ok']} of {counts['total']} prompts done.", "",
            "| # | prompt | model | output | files |", "|---|---|---|---|---|"]
    yield ("\n".join(head) + "\n").encode("utf-8")
    graphs = []
    for i in items:
        if i["status"] == "ok":
            files = " ".join(f"[{fmt}]({name})" for fmt, name in i["files"].items())
            out = _md(i["text"])
            won = i.get("choices")
            if won is not None:
                out = ("winner: " + _md(repr(won["winner"])) if won["winner"] is not None else "winner: not known") + (
                    f" ({won['share']:.1%})" if won.get("share") is not None else "")
            if "svg" in i["files"] and counts["total"] <= SHARD_AFTER:
                graphs.append((i["n"], _md(i["prompt"]), i["files"]["svg"]))
        else:
            files = ""
            out = "**" + i["status"] + "**" + (": " + _md(i["error"]) if i.get("error") else "")
        yield f"| {i['n']} | {_md(i['prompt'])} | {_md(i['model'])} | {out} | {files} |\n".encode()
    for n, prompt, svg in graphs:  # pictures inline only for batches a person reads page by page
        yield f"\n## {n}. {prompt}\n\n![graph of prompt {n}]({svg})\n".encode()
