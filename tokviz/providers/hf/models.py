"""Which model, on which device, in which dtype: found on disk only (a folder, the Hugging Face cache,
a GGUF file), never downloaded, and loaded once per process.

A GGUF (the embedded model included) is dequantised by transformers itself, which takes ~45 s and
2.6 GB here; it is done once and kept as a float32 checkpoint in tokviz's cache folder (written to
a temporary folder and renamed, so an interrupted first run leaves nothing half-written), which
then loads in ~3 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokviz.ground.dirs import cache_dir
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import DEFAULT_MODEL, Progress
from tokviz.providers.embedded import EMBEDDED_NAMES, embedded_model_path
from tokviz.providers.hf.forward import plain_head
from tokviz.providers.hf.pieces import special_ids, spelling

if TYPE_CHECKING:
    import torch

# Written last into a converted folder: a folder without it is an interrupted conversion.
DONE = "tokviz-converted.json"
FORMAT = 1  # bumped when what a converted folder holds changes


@dataclass
class Model:
    """A loaded model and what every caller needs to read it."""

    model: Any  # a transformers PreTrainedModel, in eval mode
    tokenizer: Any
    name: str  # as runs show it
    device: torch.device
    dtype: torch.dtype
    stop_ids: frozenset[int]
    context: int  # positions the model was trained for
    bos: int | None  # prepended to raw text when the tokenizer adds it
    engine: str  # "transformers 5.24.0, torch 2.13.0, float32 on cpu" (recorded in every run)
    precision: str  # "float32 on cpu": what the figures' arithmetic was (shown beside the model in every table)
    special_ids: frozenset[int]  # control tokens: no text of their own (`pieces.special_ids`)
    spelling: str  # how the vocabulary writes bytes (`pieces.spelling`)
    plain_head: bool = False  # logits = output layer(body): scoring may apply the layer in chunks (`forward.plain_head`)
    cache_kw: str = "past_key_values"  # the forward pass's name for the KV cache ("cache" from transformers 5.x, else "past_key_values")
    pieces: dict[int, tuple[str, bytes]] = field(default_factory=dict)


_LOADED: dict[tuple[str, str, str], Model] = {}


def shown_name(model: str) -> str:
    """The model's name in a run: the embedded model under the name the local provider gives it,
    so a run of each can be compared by name."""
    return DEFAULT_MODEL if model in EMBEDDED_NAMES else model


def load(model: str, options: Mapping[str, Any], progress: Progress) -> Model:
    """The model named `model` (one stays in memory: loading another frees the previous)."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as err:
        raise ProviderError(f"the transformers provider needs PyTorch and transformers ({err.name or err} is not "
                            "installed)", hint='pip install "tokviz[transformers]"') from None
    device, dtype = _placement(options)
    key = (model, str(device), str(dtype))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = _load(model, device, dtype, progress)
    threads = options.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return _LOADED[key]


def _placement(options: Mapping[str, Any]) -> tuple[torch.device, torch.dtype]:
    """The device (CUDA when there is one, else the CPU) and dtype (float32 on the CPU, where it is
    the reference and fast enough; bfloat16 on a GPU), unless -O device / -O dtype say otherwise."""
    import torch

    name = options.get("device", "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("-O device=cuda: PyTorch sees no CUDA device here", hint="leave -O device out, or use cpu")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError("-O device=mps: PyTorch sees no Apple GPU here", hint="leave -O device out, or use cpu")
    dtype = options.get("dtype", "auto")
    if dtype == "auto":
        dtype = "float32" if name == "cpu" else "bfloat16"
    return torch.device(name), getattr(torch, dtype)


def _load(model: str, device: torch.device, dtype: torch.dtype, progress: Progress) -> Model:
    import inspect

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, where = _source(model, progress)
    if isinstance(folder, Path):
        check_folder(folder, where)
    _quiet_transformers()
    try:
        with no_stdin():
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
            net = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype,
                                                       trust_remote_code=False)
    except OSError as err:
        raise UsageError(f"cannot load {where}: {_first_line(err)}",
                         hint="tokviz never downloads: give a folder, a .gguf file, or a model already in the "
                              "Hugging Face cache (hf download NAME)") from None
    except Exception as err:  # a corrupt folder (safetensors, config, tokenizer): one line, never a traceback
        raise ProviderError(f"transformers cannot load {where}: {_first_line(err)}") from None
    net.to(device)
    net.eval()
    config = net.config
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if len(tokenizer) < min(256, vocab):  # transformers 5 makes an empty tokenizer for a folder with none
        raise UsageError(f"{where} has no usable tokenizer ({len(tokenizer)} tokens for a vocabulary of {vocab:,})",
                         hint="the folder needs tokenizer.json, tokenizer.model or vocab.json beside the weights")
    context = int(getattr(config, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 0) or 2048)
    stops = {*_ids(getattr(net.generation_config, "eos_token_id", None)), *_ids(tokenizer.eos_token_id)}
    for marker in ("<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>"):  # the turn ends of common chat formats
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            stops.add(token_id)
    probe = tokenizer("a").input_ids
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id] else None
    kw = "cache" if "cache" in inspect.signature(net.forward).parameters else "past_key_values"
    precision = f"{str(dtype).removeprefix('torch.')} on {device.type}"
    engine = f"transformers {transformers.__version__}, torch {torch.__version__.split('+')[0]}, {precision}"
    loaded = Model(model=net, tokenizer=tokenizer, name=shown_name(model), device=device, dtype=dtype,
                 stop_ids=frozenset(stops), context=context, bos=bos, engine=engine, precision=precision, spelling=spelling(tokenizer),
                 special_ids=special_ids(tokenizer),
                 cache_kw=kw)
    loaded.plain_head = plain_head(loaded)
    return loaded


# Sizes in a config that no real model exceeds: a folder claiming more is refused before
# transformers allocates it (a vocabulary of 10^12 would take the machine's memory first).
_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
          "num_key_value_heads", "max_position_embeddings", "head_dim")
_MOST = 1 << 24
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tokenizer_config.json")


def check_folder(folder: Path, where: str) -> None:
    """Refuse, in one line, a folder that would run its own code or whose config cannot be a model.

    tokviz never runs a model folder's Python: `trust_remote_code=False` is passed on every load
    (so transformers never asks on stdin), and a folder whose config *only* works with its own
    code (an `auto_map` for a model type transformers does not know) is named as such."""
    config = folder / "config.json"
    if not config.is_file():
        return  # transformers says what is missing
    try:
        data = json.loads(config.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{where}: config.json is not valid JSON ({_first_line(err)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: config.json is not a JSON object")
    sections = [data, *(v for v in data.values() if isinstance(v, dict))]
    for section in sections:
        for name in _SIZES:
            value = section.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MOST:
                raise UsageError(f"{where}: config.json says {name} = {json.dumps(value)[:40]}, which no model has")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise UsageError(f"{where} has no tokenizer", hint=f"the folder needs one of {', '.join(_TOKENIZER_FILES)}")
    if "auto_map" in data and not _known_type(data.get("model_type")):
        raise UsageError(f"{where} needs its own Python code (config.json has an auto_map for model type "
                         f"{str(data.get('model_type'))[:40]!r}); tokviz never runs a model folder's code",
                         hint="use a model whose architecture transformers itself implements")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _known_type(model_type: Any) -> bool:
    from transformers import CONFIG_MAPPING

    return isinstance(model_type, str) and model_type in CONFIG_MAPPING


@contextlib.contextmanager
def no_stdin() -> Iterator[None]:
    """No library reads tokviz's standard input while a model loads: a prompt it might show (such
    as transformers' "Do you wish to run the custom code? [y/N]") reads end of file, never the
    user's piped `yes`."""
    import sys

    saved = sys.stdin
    with open(os.devnull, encoding="utf-8") as empty:
        sys.stdin = empty
        try:
            yield
        finally:
            sys.stdin = saved


def check_context(m: Model, prompt_tokens: int, more: int, what: str) -> None:
    """Refuse, before anything is read, what the model's context cannot hold."""
    if prompt_tokens + more + 1 > m.context:
        raise UsageError(f"the prompt ({prompt_tokens} tokens) and {what} ({more}) exceed the model's context of "
                         f"{m.context} tokens", hint="shorten the prompt or lower the count")


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _source(model: str, progress: Progress) -> tuple[Path | str, str]:
    """Where transformers reads the model from, and how to name it in an error."""
    if model in EMBEDDED_NAMES:
        return converted(embedded_model_path(progress), progress), f"the embedded model {DEFAULT_MODEL}"
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UsageError(f"model file {model} does not exist")
        return converted(path, progress), str(path)
    if path.is_dir():
        return path, str(path)
    if path.exists():
        raise UsageError(f"{model} is neither a model folder nor a .gguf file")
    return model, f"{model!r} from the Hugging Face cache"


def converted(gguf: Path, progress: Progress) -> Path:
    """A float32 checkpoint of `gguf` in tokviz's cache, converted the first time."""
    stat = gguf.stat()
    tag = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{FORMAT}".encode()).hexdigest()[:12]
    folder = cache_dir() / "transformers" / f"{gguf.stem}-{tag}"
    if (folder / DONE).is_file():
        return folder
    progress(f"tokviz: converting {gguf.name} for transformers into {folder} (once, about a minute for a small "
             "model; float32 takes several times the GGUF's size: 1.1 GB for the embedded model)…")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with _temporary(folder.parent) as tmp:
            _convert(gguf, tmp)
            (tmp / DONE).write_text(json.dumps({"gguf": str(gguf), "format": FORMAT}) + "\n", encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted conversion's leftovers
            os.replace(tmp, folder)
    except OSError as err:
        raise ProviderError(f"cannot write the converted model to {folder.parent}: {err.strerror or err}",
                            hint="set TOKVIZ_CACHE_DIR to a writable folder with a few GB free") from None
    return folder


@contextlib.contextmanager
def _temporary(parent: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".converting-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert(gguf: Path, out: Path) -> None:
    """transformers' own GGUF reader (every tensor dequantised as the `gguf` package does), saved
    as an ordinary float32 checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    try:
        with _no_bar(), no_stdin():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
            net = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                       trust_remote_code=False)
    except ImportError as err:
        raise ProviderError(f"reading a GGUF with transformers needs more packages ({_first_line(err)})",
                            hint='pip install "tokviz[transformers]"') from None
    except (ValueError, KeyError, RuntimeError) as err:
        raise ProviderError(f"transformers cannot read {gguf.name}: {_first_line(err)}") from None
    # Dequantised, the weights are plain float32: saved as such (transformers refuses to save a
    # model it still marks as GGUF-quantised).
    net.hf_quantizer = None
    if hasattr(net.config, "quantization_config"):
        del net.config.quantization_config
    net.save_pretrained(out)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _no_bar() -> Iterator[None]:
    """transformers' GGUF reader draws a tqdm bar of its own on stderr, past its logging switches:
    its `tqdm` is replaced by a pass-through while it runs."""
    try:
        from transformers import modeling_gguf_pytorch_utils as reader
    except ImportError:
        yield
        return
    bar = getattr(reader, "tqdm", None)
    reader.tqdm = lambda items, *args, **kwargs: items
    try:
        yield
    finally:
        reader.tqdm = bar


def _quiet_transformers() -> None:
    """Only the face prints: transformers' warnings and progress bars go to logging, not stderr."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        import huggingface_hub.utils as hub_utils

        hub_utils.disable_progress_bars()
