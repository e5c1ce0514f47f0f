"""A stand-in for the Python interpreter of the bench/*.sh drivers (their ``PY``), so a test can run a driver
end to end in seconds: it checks every command a driver gives and fakes only the slow part.

- ``-c CODE`` and ``-`` (a heredoc) run in the real interpreter: they are the driver's own logic.
- A repo script runs until its real argument parser has parsed the driver's arguments (an unknown flag or a bad
  value fails the driver as it would on the card), then the stand-in checks what the script itself would check
  first (task names, trainer overrides against ``TrainConfig``, the model files an evaluation reads) and writes
  the files the script would leave (model files with their records, result JSONs) instead of training or
  measuring.
Each call is appended to ``$STAND_IN_LOG`` as a JSON line: ``{"script", "argv", "parsed"}``.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from pathlib import Path


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace, script_globals: dict):
        self.namespace, self.script_globals = namespace, script_globals


def parse_only(script: str, argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """Run ``script`` as __main__ up to its first ``parse_args`` and return what it parsed and its globals."""
    real = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self, args=None, namespace=None):
        ns = real(self, args, namespace)
        raise _Parsed(ns, sys._getframe(1).f_globals)

    argparse.ArgumentParser.parse_args = stop_after_parsing
    sys.argv = [script, *argv]
    try:
        runpy.run_path(script, run_name="__main__")
    except _Parsed as done:
        return done.namespace, done.script_globals
    finally:
        argparse.ArgumentParser.parse_args = real
    raise SystemExit(f"stand-in: {script} finished without parsing arguments")


def write_model(path: Path, step: int) -> None:
    """A small real safetensors file with the trainer's step, as ``train/export.py`` records it."""
    import torch
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)                      # never write through a link into someone's file
    save_file({"w": torch.zeros(1)}, str(path), metadata={"v2v.train": json.dumps({"step": step})})


def model_step(path: Path) -> int:
    from v2v.model.checkpoint import read_metadata
    return json.loads(read_metadata(path)["v2v.train"])["step"] if path.is_file() else 0


def check_trainer_command(cmd: list[str]) -> str:
    """``train/train.py`` arguments -> its output folder; the config and every override must load."""
    from train.config import load_config
    ns = argparse.ArgumentParser()
    ns.add_argument("--config")
    ns.add_argument("--set", action="append", default=[])
    ns.add_argument("--out")
    ns.add_argument("--resume", action="store_true")
    a = ns.parse_args(cmd)
    return load_config(a.config, a.set + ([f"out_dir={a.out}"] if a.out else [])).out_dir


def fake_footage_models(a: argparse.Namespace, g: dict) -> None:
    names = [n for n in a.tasks.split(",") if n]
    known = {*g["TASKS"], *g["GENERAL"], *g["VARIANTS"]}
    if set(names) - known:
        raise SystemExit(f"stand-in: unknown tasks {sorted(set(names) - known)}")
    if a.action != "train":
        return
    models = Path(a.models)
    for name in names:
        out = Path(a.runs).resolve() / name
        cmd = g["train_command"](name, out, mixed_precision=a.mixed_precision, steps=a.steps, sets=a.overrides)
        check_trainer_command(cmd[2:])
        steps = a.steps or 3
        write_model(out / "model.safetensors", steps)
        (out / "losses.jsonl").write_text(json.dumps({"step": steps}) + "\n")
        write_model(models / f"{name}.safetensors", steps)
        (models / f"{name}.json").write_text(json.dumps(
            {"task": name, "steps": steps, "seconds": 1, "device": a.device_note,
             "mixed_precision": a.mixed_precision, "command": " ".join(cmd[1:])}, indent=2) + "\n")


def fake_trainer(argv: list[str]) -> None:
    out = Path(check_trainer_command(argv))
    step = model_step(out / "model.safetensors") + 1
    write_model(out / "model.safetensors", step)
    with open(out / "losses.jsonl", "a") as losses:
        losses.write(json.dumps({"step": step}) + "\n")


def fake_evaluate(a: argparse.Namespace) -> None:
    missing = [m for m in a.models if not Path(m).is_file()]
    if missing:
        raise SystemExit(f"stand-in: evaluate.py was given models that no step made: {missing}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"stand_in": True, "models": [str(m) for m in a.models]}) + "\n")


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-c", "-"):
        os.execv(sys.executable, [sys.executable, *argv])
    script, rest = argv[0], argv[1:]
    sys.path[:0] = [os.getcwd()]
    if script == "train/train.py":
        parsed = {}
        fake_trainer(rest)
    else:
        a, g = parse_only(script, rest)
        parsed = vars(a)
        if script == "scripts/footage_models.py":
            fake_footage_models(a, g)
        elif script == "bench/evaluate.py":
            fake_evaluate(a)
        elif getattr(a, "out", None):
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps({"stand_in": True}) + "\n")
        elif script == "bench/train_throughput.py":
            print(json.dumps({"stand_in": True}))
    with open(os.environ["STAND_IN_LOG"], "a") as log:
        log.write(json.dumps({"script": script, "argv": rest, "parsed": parsed}, default=str) + "\n")


if __name__ == "__main__":
    main()
