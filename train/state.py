"""Training state on disk: accelerate's state plus the trainer's position, written atomically (a temporary
folder renamed into place, then the ``checkpoints/latest`` pointer), and what ``--resume`` checks and cleans:
the networks' config it was saved with, half-written states and log lines of steps after the saved state."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from v2v.model.checkpoint import weights_checksum
from v2v.model.config import DiscriminatorConfig, GeneratorConfig


class TrainState:
    """Registered with accelerate so save_state/load_state carry the trainer's position."""

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.epoch, self.batch_in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])


def latest_state(out_dir: Path) -> Path | None:
    """The newest COMPLETE state folder (named in checkpoints/latest), or None."""
    pointer = out_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = out_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer.json").is_file() else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())


def networks_record(gcfg: GeneratorConfig, dis_cfg: DiscriminatorConfig, style_encoder_ngf: int | None) -> dict:
    """What shapes the saved weights: compared on --resume, so a changed config is named, not a size mismatch."""
    return {"generator": gcfg.to_dict(), "discriminator": dis_cfg.to_dict(),
            "style_encoder": None if style_encoder_ngf is None else {"ngf": style_encoder_ngf}}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def changed_fields(saved: dict, now: dict) -> list[str]:
    """``name: saved -> now`` for every network setting that differs (flattened dotted names)."""
    a, b = _flat(json.loads(json.dumps(saved))), _flat(json.loads(json.dumps(now)))
    return [f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _with_defaults(record: dict) -> dict:
    """A networks record with the config fields added since it was written filled in with their defaults."""
    out = dict(record)
    for key, cls in (("generator", GeneratorConfig), ("discriminator", DiscriminatorConfig)):
        try:
            out[key] = cls.from_dict(record[key]).to_dict()
        except Exception:  # noqa: BLE001  (a record this version cannot read: compare it as it is)
            pass
    return out


def check_resume(found: Path, record: dict) -> None:
    """Refuse to resume a state whose networks were built from another config, naming what changed."""
    saved = json.loads((found / "trainer.json").read_text()).get("networks")
    if saved is None:     # a state written before the record existed: the load itself will tell
        return
    changed = changed_fields(_with_defaults(saved), _with_defaults(record))
    if changed:
        raise ValueError(f"--resume: the networks' config changed since {found} was saved ({'; '.join(changed)}); "
                         "resume with the config the run started with, or train into a new out_dir")


def load_training_state(accelerator, found: Path) -> None:
    try:
        accelerator.load_state(str(found))
    except RuntimeError as e:   # a state without a networks record and another config: name it in one line
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e).splitlines()[0])
        raise ValueError(f"--resume: the saved state {found} does not fit the networks of this config ({first}); "
                         "resume with the config the run started with, or train into a new out_dir") from None


def trim_loss_log(path: Path, step: int) -> None:
    """Drop the lines of steps after ``step`` (made after the resumed state, before a kill): they are redone."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):   # a half-written last line
            continue
    _write_atomic(path, "".join(ln + "\n" for ln in kept))


def remove_unfinished_states(out_dir: Path) -> None:
    """State folders a kill interrupted while being written (never pointed at by checkpoints/latest)."""
    for tmp in (out_dir / "checkpoints").glob(".tmp-state-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def save_training_state(accelerator, out_dir: Path, state: TrainState, keep: int, networks: dict | None = None) -> Path:
    """All processes call this.  Writes checkpoints/.tmp-state-N, renames it to state-N when complete and
    only then points checkpoints/latest at it: a kill at any moment leaves the previous state usable.
    ``networks`` (:func:`networks_record`) is kept beside the trainer's counters for :func:`check_resume`."""
    ckpt = out_dir / "checkpoints"
    name = f"state-{state.step:08d}"
    tmp = ckpt / f".tmp-{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    final = ckpt / name
    if accelerator.is_main_process:
        (tmp / "trainer.json").write_text(json.dumps({**state.state_dict(), "networks": networks}))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_atomic(ckpt / "latest", name + "\n")
        states = sorted(p for p in ckpt.glob("state-*") if p.is_dir())
        for old in states[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def weights_digest(model: nn.Module) -> str:
    """The checksum model files record (names, dtypes, shapes, bytes), of a live model's weights."""
    return weights_checksum(model.state_dict())
