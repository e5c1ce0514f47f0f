"""One safetensors file per generator: weights + the config that builds them.

File layout (see docs/CONVENTIONS.md, "Checkpoints")::

    tensors   = model.state_dict()
    metadata  = {"format": "pt",
                 "v2v.format_version": "1",
                 "v2v.kind": "generator",
                 "v2v.config": json.dumps(cfg.to_dict()),
                 "v2v.weights_sha256": sha256 of the tensors (names, dtypes, shapes, bytes),
                 ...extras ("v2v.task", "v2v.style_gmm", ...)}

A style model may carry its image encoder E as well (for styles taken from a reference image): its tensors
under ``style_encoder.`` and its constructor arguments in ``"v2v.style_encoder"``; the checksum covers them too.

Loading never unpickles anything: the header is parsed by hand first (an 8-byte
little-endian length, then that many bytes of JSON), so a ``torch.save`` file,
a truncated download or some other model's safetensors file is refused with a
one-line :class:`CheckpointError` before a single tensor is read; the network's shapes are checked
against the config before it is built (on the meta device: a config asking for a huge network
costs nothing); the weights are checked against their recorded sha256 (a bit flip in a download)
and for NaN/inf (a diverged training run) before the model is returned.  This module
is the only place that reads or writes generator files; the ComfyUI node and
the trainer both call it.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..files import apply_umask, fsync_dir, temporary_beside
from .config import ConfigError, GeneratorConfig

FORMAT_VERSION = "1"
KIND = "generator"
CHECKSUM_KEY = "v2v.weights_sha256"
RESERVED_KEYS = ("format", "v2v.format_version", "v2v.kind", "v2v.config", CHECKSUM_KEY)
STYLE_ENCODER_KEY = "v2v.style_encoder"     # E's constructor arguments (JSON), when the file carries E
STYLE_ENCODER_PREFIX = "style_encoder."      # E's tensors

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
_CONVERT_HINT = (
    "vid2vid loads only .safetensors generator files; if you trust the file, convert it in Python with "
    "sd = torch.load(path, weights_only=True); model = Vid2VidGenerator(cfg); model.load_state_dict(sd); "
    "v2v.model.checkpoint.save_generator(model, 'model.safetensors')"
)


class CheckpointError(ValueError):
    """A file that is not a loadable vid2vid generator (the message says why and names the file)."""


# ---- writing ----------------------------------------------------------------
def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Strip torch.compile / DDP / accelerate wrappers so the keys match a bare generator."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), torch.nn.Module) and not hasattr(model, "cfg"):
            model = model.module
        else:
            return model


def build_metadata(cfg: GeneratorConfig, extra_metadata: dict[str, str] | None = None) -> dict[str, str]:
    metadata = {
        "format": "pt",
        "v2v.format_version": FORMAT_VERSION,
        "v2v.kind": KIND,
        "v2v.config": json.dumps(cfg.to_dict(), sort_keys=True),
    }
    for key, value in (extra_metadata or {}).items():
        if key in RESERVED_KEYS:
            raise ValueError(f"extra_metadata may not override the reserved key {key!r}")
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"extra_metadata must map str to str (safetensors metadata); got {key!r}: {type(value).__name__}"
                " (json.dumps structured values)"
            )
        metadata[key] = value
    return metadata


def save_generator(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    extra_metadata: dict[str, str] | None = None,
    style_encoder: torch.nn.Module | None = None,
) -> Path:
    """Write ``model`` (a Vid2VidGenerator, possibly wrapped) to ``path`` atomically, with the style encoder E
    of a style model when given (a :class:`v2v.model.style.StyleEncoder`, for styles from a reference image).

    The file is written under a temporary name in the same folder, flushed and
    fsynced, then renamed over ``path``: a crash or an error mid-write leaves
    whatever was at ``path`` before untouched.  Returns the final path.
    """
    model = _unwrap(model)
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, GeneratorConfig):
        raise TypeError(f"save_generator needs a Vid2VidGenerator (a module with .cfg: GeneratorConfig); got {type(model).__name__}")
    # E's record comes only from the encoder written with it (metadata copied from another file must not claim an
    # encoder this file lacks)
    extra_metadata = {k: v for k, v in (extra_metadata or {}).items() if k != STYLE_ENCODER_KEY}
    named = dict(model.state_dict())
    if style_encoder is not None:
        style_encoder = _unwrap(style_encoder)
        if getattr(style_encoder, "style_nc", None) != cfg.style_nc:
            raise ValueError(f"the style encoder makes {getattr(style_encoder, 'style_nc', None)}-d styles but the "
                             f"generator takes style_nc={cfg.style_nc}")
        extra_metadata[STYLE_ENCODER_KEY] = json.dumps(style_encoder.config, sort_keys=True)
        named.update({STYLE_ENCODER_PREFIX + k: t for k, t in style_encoder.state_dict().items()})
    metadata = build_metadata(cfg, extra_metadata)
    # contiguous CPU copies; clone() so no two entries share storage (safetensors refuses shared tensors)
    tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in named.items()}
    bad = non_finite(tensors)
    if bad:
        raise ValueError(f"refusing to save {path}: tensors hold NaN or inf ({_some(bad)}); training diverged")
    return _write_atomic(Path(path), tensors, metadata)


def update_metadata(path: str | os.PathLike, extra_metadata: dict[str, str]) -> Path:
    """Rewrite a generator file with ``extra_metadata`` added (or replaced), its weights and config untouched;
    atomically, like :func:`save_generator`.  Used to record a source recipe in a model trained before them."""
    path = Path(path)
    metadata = read_metadata(path)
    cfg = _config_from_metadata(path, metadata)
    kept = {k: v for k, v in metadata.items() if k not in RESERVED_KEYS}
    new = build_metadata(cfg, {**kept, **extra_metadata})
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error type for bad data
        raise CheckpointError(f"{path} is corrupt: {e}") from None
    return _write_atomic(path, tensors, new)


def weights_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order: each name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or inf."""
    return sorted(n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def _some(names: list[str], fmt=str) -> str:
    shown = ", ".join(fmt(n) for n in names[:8])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def _write_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """safetensors file written under a temporary name in the same folder, fsynced, renamed over ``path``;
    the weights' checksum is recorded in the metadata."""
    metadata = {**metadata, CHECKSUM_KEY: weights_checksum(tensors)}
    tmp = temporary_beside(path)            # the umask's mode; leftovers of killed saves are removed
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        apply_umask(tmp, folder=False)       # save_file replaces the file (0600): the umask's mode again
        with open(tmp, "rb+") as f:  # save_file does not fsync; make the bytes durable before the rename
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent if str(path.parent) else Path("."))
    return path


# ---- reading the header (no tensors, no pickle) -------------------------------
def _describe_foreign(head: bytes) -> str | None:
    """Name the format of a file that is not safetensors, from its first bytes."""
    if head.startswith(b"PK\x03\x04"):
        return "looks like a pickled PyTorch checkpoint (torch.save zip archive)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "looks like a pickled PyTorch checkpoint (raw pickle)"
    if head.startswith(b"\x89HDF"):
        return "looks like an HDF5/Keras file"
    if head.startswith(b"GGUF"):
        return "looks like a GGUF file"
    return None


def _valid_entry(info: Any) -> bool:
    """A tensor entry of the header: a known dtype, a shape of non-negative ints, two int offsets."""
    def ints(v, n=None):
        return (isinstance(v, list) and (n is None or len(v) == n)
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v))

    return (isinstance(info, dict) and isinstance(info.get("dtype"), str) and info["dtype"] in _SAFETENSORS_DTYPE_BYTES
            and ints(info.get("shape")) and ints(info.get("data_offsets"), 2))


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate the safetensors header of ``path`` without reading tensors.

    Returns the header dict (tensor name -> {"dtype", "shape", "data_offsets"},
    plus "__metadata__").  Raises CheckpointError for a missing, non-safetensors,
    truncated or corrupt file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a .safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        foreign = _describe_foreign(head)
        if foreign:
            raise CheckpointError(f"{path} is not a safetensors file ({foreign}); {_CONVERT_HINT}")
        if size < 8:
            raise CheckpointError(f"{path} is truncated or corrupt: {size} bytes, too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", head[:8])
        if len(head) > 8 and head[8:9] != b"{":
            raise CheckpointError(f"{path} is not a safetensors file (no JSON header after the 8-byte length)")
        if header_len > _MAX_HEADER_BYTES:
            raise CheckpointError(f"{path} is not a safetensors file (header length {header_len} is implausible)")
        if 8 + header_len > size:
            raise CheckpointError(
                f"{path} is truncated or corrupt: the header claims {header_len} bytes but the file has only {size - 8}"
            )
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a safetensors file or is corrupt (header is not valid JSON: {e})") from None

    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{path} is corrupt: its metadata is not a map of strings to strings")
    data_len = size - 8 - header_len
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not _valid_entry(info):
            raise CheckpointError(f"{path} is corrupt: malformed header entry for tensor {name!r}")
        start, stop = info["data_offsets"]
        numel = 1
        for dim in info["shape"]:
            numel *= dim
        if stop - start != numel * _SAFETENSORS_DTYPE_BYTES[info["dtype"]] or start < 0:
            raise CheckpointError(f"{path} is corrupt: tensor {name!r} has inconsistent offsets")
        end = max(end, stop)
    if end > data_len:
        raise CheckpointError(
            f"{path} is truncated or corrupt: tensors need {end} bytes of data but the file holds {data_len} "
            "(an interrupted download or copy? fetch it again)"
        )
    return header


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The str -> str metadata of any safetensors file (empty dict when it has none)."""
    return dict(read_header(path).get("__metadata__") or {})


def training_frame_size(path_or_metadata: str | os.PathLike | dict[str, str]) -> tuple[int, int] | None:
    """The (H, W) frame size the trainer recorded (``v2v.train`` metadata of a file, or of a metadata dict such
    as a loaded model's ``file_metadata``), or None (a model from elsewhere or before the record existed; a
    damaged record counts as none: it is advice, not a contract)."""
    metadata = path_or_metadata if isinstance(path_or_metadata, dict) else read_metadata(path_or_metadata)
    try:
        size = json.loads(metadata.get("v2v.train", "{}")).get("frame_size")
        h, w = (int(v) for v in size)
    except (ValueError, TypeError, AttributeError):
        return None
    return (h, w) if h > 0 and w > 0 else None


def read_config(path: str | os.PathLike) -> GeneratorConfig:
    """The GeneratorConfig stored in a vid2vid generator file (validated; no tensors are read)."""
    return _config_from_metadata(Path(path), read_metadata(path))


def _config_from_metadata(path: Path, metadata: dict[str, str]) -> GeneratorConfig:
    kind = metadata.get("v2v.kind")
    if kind is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a vid2vid generator (no 'v2v.kind' in its metadata; "
            "is it another kind of model, e.g. a Stable Diffusion checkpoint or a LoRA?)"
        )
    if kind != KIND:
        raise CheckpointError(f"{path} holds a vid2vid {kind!r}, not a {KIND!r}")
    version = metadata.get("v2v.format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has vid2vid format version {version!r}; this version of the package reads only "
            f"{FORMAT_VERSION!r} (update comfyui-vid2vid or re-export the model)"
        )
    raw = metadata.get("v2v.config")
    if raw is None:
        raise CheckpointError(f"{path} has no 'v2v.config' metadata, so the network cannot be rebuilt")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise CheckpointError(f"{path}: 'v2v.config' metadata is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: 'v2v.config' metadata must be a JSON object, got {type(data).__name__}")
    try:
        return GeneratorConfig.from_dict(data)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid generator config: {e}") from None


# ---- loading -------------------------------------------------------------------
def _check_tensors(path: Path, header: dict[str, Any], expected: dict[str, tuple[int, ...]]) -> None:
    found = {name: tuple(info["shape"]) for name, info in header.items() if name != "__metadata__"}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    if not (missing or unexpected or misshaped):
        return
    parts = []
    if missing:
        parts.append(f"missing tensors: {_some(missing)}")
    if unexpected:
        parts.append(f"unexpected tensors: {_some(unexpected)}")
    if misshaped:
        parts.append("mis-shaped tensors: " + _some(misshaped, lambda n: f"{n} (file {list(found[n])}, config {list(expected[n])})"))
    raise CheckpointError(
        f"{path}: the weights do not match the network its config describes; " + "; ".join(parts)
    )


def _check_weights(path: Path, metadata: dict[str, str], state: dict[str, torch.Tensor]) -> None:
    """The recorded checksum (files written before it existed have none) and finite values."""
    recorded = metadata.get(CHECKSUM_KEY)
    if recorded is not None and weights_checksum(state) != recorded:
        raise CheckpointError(f"{path} is corrupt: its weights do not match the checksum recorded when it was saved "
                              "(damaged in a download or on disk); fetch or copy it again")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"{path} holds NaN or inf weights ({_some(bad)}): the training run that wrote it "
                              "diverged; use an earlier checkpoint or retrain")


def _style_encoder_args(path: Path, metadata: dict[str, str]) -> dict | None:
    """The style encoder's constructor arguments recorded in the file (None: it carries no encoder)."""
    from .style import StyleEncoder

    raw = metadata.get(STYLE_ENCODER_KEY)
    if raw is None:
        return None
    try:
        return StyleEncoder.check_config(json.loads(raw))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its style encoder record ({STYLE_ENCODER_KEY!r}) is damaged: {e}") from None


def _read_checked(path: Path) -> tuple[dict[str, str], GeneratorConfig, dict | None, dict[str, torch.Tensor]]:
    """(metadata, generator config, style encoder arguments or None, every tensor), validated in this order,
    each with a CheckpointError naming the file: safetensors header (never unpickles), vid2vid metadata and
    format version, configs, tensor names and shapes (from the header, against the networks built on the meta
    device), then the weights (checksum, finite values)."""
    from .generator import Vid2VidGenerator  # local: generator imports layers/flow; keep header tools light
    from .style import StyleEncoder

    header = read_header(path)
    metadata = dict(header.get("__metadata__") or {})
    cfg = _config_from_metadata(path, metadata)
    encoder_args = _style_encoder_args(path, metadata)
    try:
        with torch.device("meta"):                       # shapes only: no memory, however large the config
            expected = {name: tuple(t.shape) for name, t in Vid2VidGenerator(cfg).state_dict().items()}
            if encoder_args is not None:
                expected.update({STYLE_ENCODER_PREFIX + name: tuple(t.shape)
                                 for name, t in StyleEncoder(**encoder_args).state_dict().items()})
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its config does not build a generator: {e}") from None
    _check_tensors(path, header, expected)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error type for bad data
        raise CheckpointError(f"{path} is corrupt: {e}") from None
    _check_weights(path, metadata, state)
    return metadata, cfg, encoder_args, state


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the generator from ``path`` alone and return it on ``device`` in eval mode, with the file's
    metadata as ``model.file_metadata`` (training record, source recipe).  Everything is validated first (see
    :func:`_read_checked`), then loaded strictly."""
    from .generator import Vid2VidGenerator

    path = Path(path)
    metadata, cfg, _, state = _read_checked(path)
    model = Vid2VidGenerator(cfg)
    try:
        model.load_state_dict({k: t for k, t in state.items() if not k.startswith(STYLE_ENCODER_PREFIX)},
                              strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the weights do not match the config: {e}") from None
    model.file_metadata = metadata   # what the file says beyond its config
    return model.to(device).eval()


def load_style_encoder(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """The style encoder E a style model's file carries, on ``device`` in eval mode (validated like the
    generator); a CheckpointError naming the fix when the file has none."""
    from .style import StyleEncoder

    path = Path(path)
    metadata, cfg, encoder_args, state = _read_checked(path)
    if encoder_args is None:
        raise CheckpointError(f"{path} carries no style encoder, so it cannot take a style from an image: "
                              + ("it has no style input (style_nc 0)" if not cfg.style_nc else
                                 "it was written before model files kept E; export it again from its training run "
                                 "(scripts/add_style_encoder.py)"))
    encoder = StyleEncoder(**encoder_args)
    n = len(STYLE_ENCODER_PREFIX)
    encoder.load_state_dict({k[n:]: t for k, t in state.items() if k.startswith(STYLE_ENCODER_PREFIX)}, strict=True)
    return encoder.to(device).eval()
