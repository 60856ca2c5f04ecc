"""Checkpoints that resume a run exactly and load safely: ``torch.load(weights_only=True)``.

A run folder may come from someone else (a colleague's run, a download), and a full
pickle can run any code when it is opened. So every checkpoint is written in the
types the weights-only unpickler accepts — tensors, numbers, strings, bytes, None,
and dicts / lists / tuples / sets of them — and read with ``weights_only=True``.

What a family's ``state_dict`` may hold beyond that is converted here, generically,
so a new family needs to know nothing about it: a numpy array becomes a tagged
tensor (its raw bytes when torch has no such dtype, a list for object arrays) and
comes back as the same array; a numpy scalar comes back as a numpy scalar. Anything
else (a Path, a custom object) fails at *save* time with the key named, not at
resume time an hour later. RNG states are stored as tensors and lists.

``last.pt`` keeps one predecessor, ``previous.pt``: writes are atomic (temp file,
fsync, rename), but a file system can still hand back a short file (a full disk, a
copy cut off between storages). :func:`load_latest` then says which file is damaged
and resumes from the previous good one.
"""
from __future__ import annotations

import pickle
import random
import re
import sys
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import WhaleflowError
from ..io import atomic_path

FORMAT = 2                     # 1: full pickles (weights_only=False), before safe loading
PREVIOUS = "previous.pt"       # the predecessor kept beside last.pt
_ARRAY, _SCALAR, _FROZEN = "__ndarray__", "__npscalar__", "__frozenset__"
_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.Tensor, torch.Size,
           torch.device, torch.dtype)
#: numpy dtypes that torch holds natively (the rest travel as raw bytes)
_NATIVE = {np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32",
                                 "float64", "complex64", "complex128")}


class CheckpointError(WhaleflowError):
    """A checkpoint that cannot be written or read safely; the message names the file and the fix."""


# ----------------------------------------------------------------------------- safe encoding
def _encode_array(arr: np.ndarray, where: str) -> dict[str, Any]:
    descr = np.lib.format.dtype_to_descr(arr.dtype)
    shape = list(arr.shape)
    if arr.dtype.hasobject:
        return {_ARRAY: [encode(v, f"{where}[{i}]") for i, v in enumerate(arr.ravel().tolist())],
                "dtype": "object", "shape": shape}
    if arr.dtype in _NATIVE and arr.dtype.isnative:
        return {_ARRAY: torch.from_numpy(np.array(arr, order="C", copy=True)), "dtype": descr, "shape": shape}
    data = arr.tobytes()
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)
    return {_ARRAY: raw, "dtype": descr, "shape": shape, "raw": True}


def _decode_array(node: dict[str, Any]) -> np.ndarray:
    shape = tuple(node["shape"])
    if node["dtype"] == "object":
        out = np.empty(len(node[_ARRAY]), dtype=object)
        out[:] = [decode(v) for v in node[_ARRAY]]
        return out.reshape(shape)
    dtype = np.lib.format.descr_to_dtype(node["dtype"])
    if node.get("raw"):
        return np.frombuffer(node[_ARRAY].numpy().tobytes(), dtype=dtype).reshape(shape).copy()
    return node[_ARRAY].numpy().astype(dtype, copy=False).reshape(shape)


def encode(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` in weights-only types (numpy → tagged tensors); TypeError naming ``where`` otherwise."""
    if isinstance(obj, np.ndarray):
        return _encode_array(obj, where)
    if isinstance(obj, np.generic):
        return {_SCALAR: _encode_array(np.asarray(obj), where)}
    if isinstance(obj, _LEAVES):
        return obj
    if isinstance(obj, dict):
        kind = type(obj) if type(obj) in (dict, OrderedDict, Counter) else dict
        return kind((k, encode(v, f"{where}.{k}")) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, frozenset):
        return {_FROZEN: [encode(v, where) for v in obj]}
    if isinstance(obj, set):
        return {encode(v, where) for v in obj}
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which a safe "
                    "(weights_only) checkpoint cannot hold. Fix: store it as tensors, numbers, strings, "
                    "lists or dicts in the family's state_dict")


def decode(obj: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if _ARRAY in obj:
            return _decode_array(obj)
        if _SCALAR in obj:
            return _decode_array(obj[_SCALAR])[()]
        if _FROZEN in obj:
            return frozenset(decode(v) for v in obj[_FROZEN])
        kind = type(obj) if type(obj) in (dict, OrderedDict, Counter) else dict
        return kind((k, decode(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(decode(v) for v in obj)
    if isinstance(obj, set):
        return {decode(v) for v in obj}
    return obj


# ----------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as lists and tensors."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- save and load
def save_checkpoint(path: str | Path, payload: dict[str, Any], *, keep_previous: bool = False) -> Path:
    """Write ``payload`` plus the current RNG states, atomically; with ``keep_previous`` the file
    it replaces becomes ``previous.pt`` beside it (the fallback of :func:`load_latest`)."""
    path = Path(path)
    try:
        data = encode(dict(payload, rng=rng_state(), checkpoint_format=FORMAT))
    except TypeError as exc:
        raise CheckpointError(f"cannot write {path}: {exc}.") from None
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(data, tmp)
        if keep_previous and path.exists():
            path.replace(path.with_name(PREVIOUS))
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a damaged or unsafe file raises CheckpointError."""
    path = Path(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = _first_sentence(exc)
        if "weights only load failed" in str(exc).lower() or "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds objects that safe loading refuses ({_unsupported(exc)}): it was written by an "
                "older whaleflow or by other code. Fix: delete it (the model then trains from the start).") from None
        raise CheckpointError(f"{path} is damaged ({first}). Fix: delete it.") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"{path} is damaged ({size} bytes that torch cannot read: {_first_sentence(exc)}), "
                              "probably cut off while being written or copied. Fix: delete it.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a whaleflow checkpoint (a {type(data).__name__}). Fix: delete it.")
    return decode(data)


def _unsupported(exc: Exception) -> str:
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    return f"unsupported global {found.group(1)}" if found else "not weights-only"


def _first_sentence(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def candidates(last: str | Path) -> list[Path]:
    """Where a resume looks, newest first: ``last.pt``, then ``previous.pt`` beside it."""
    last = Path(last)
    return [last, last.with_name(PREVIOUS)]


def load_latest(paths: Sequence[str | Path], *, name: str = "", stream=None) -> tuple[dict[str, Any], Path] | None:
    """The first of ``paths`` that loads, and which one; None when none exists.

    A damaged file is skipped with one line on ``stream`` (stderr) naming it and the file
    used instead; if every existing file is damaged, CheckpointError lists them.
    """
    stream = stream or sys.stderr
    problems: list[str] = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            tag = f"[{name}] " if name else ""
            print(f"{tag}{problems[0]} Resuming from {path} instead (epoch {ckpt.get('state', {}).get('epoch', '?')}).",
                  file=stream, flush=True)
        return ckpt, path
    if problems:
        raise CheckpointError(" ".join(problems[:1]) + f" No older checkpoint loads either ({len(problems)} tried); "
                              f"delete {Path(paths[0]).parent} to train this model from the start.")
    return None


def remove_partial_writes(folder: str | Path) -> int:
    """Delete temp files that a killed write left (``.last.pt.<random suffix>.pt``); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    leftovers = [p for p in folder.glob(".*.pt") if p.is_file()]
    for p in leftovers:
        p.unlink(missing_ok=True)
    return len(leftovers)
