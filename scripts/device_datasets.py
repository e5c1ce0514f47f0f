"""Carry prepared datasets to a lent GPU machine, whose copy of the working tree is limited to 64 MiB.

    python scripts/device_datasets.py pack faces streets --out .carry     # here: .carry/<name>.tgz
    python scripts/device_datasets.py unpack .carry --into .cache/datasets  # there, before training

An archive holds a dataset's ``dataset.json`` and its training split (``--splits`` for more), without the flow
cache (rebuilt on first use) and, with ``--drop instance``, without instance maps the recipe does not read.
Face-sketch sources (``.npy`` float16 ``[10, H, W]``, ~0.5 MB a frame, mostly distance maps) travel as one
16-bit PNG of lines per frame (``v2v.sources.sketch.pack_face_sketch``) and are rebuilt on unpacking; pack
checks that every frame rebuilds bit for bit and refuses the dataset otherwise.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from train.data import read_dataset_json  # noqa: E402
from v2v.sources.sketch import pack_face_sketch, unpack_face_sketch  # noqa: E402

PACKED = ".sketch.png"      # suffix of a packed face-sketch frame


def packs_sketches(dataset: Path) -> bool:
    meta = read_dataset_json(dataset)
    return meta.get("source_kind") == "array" and meta.get("source_recipe", {}).get("extractor") == "face_sketch"


def rebuild(bits: np.ndarray, n_channels: int) -> np.ndarray:
    return unpack_face_sketch(bits, n_channels).astype(np.float16)


def packed_sketch(path: Path) -> tuple[bytes, int]:
    """A face-sketch ``.npy`` as PNG bytes of its lines, and its channel count; refused unless it rebuilds exactly."""
    chans = np.load(path)
    bits = pack_face_sketch(chans)
    if not np.array_equal(rebuild(bits, chans.shape[0]), chans):
        raise SystemExit(f"{path}: this sketch does not rebuild exactly from its lines; not packed")
    return cv2.imencode(".png", bits, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes(), chans.shape[0]


def pack(dataset: Path, out: Path, splits: list[str], drop: set[str]) -> dict:
    """Write ``out`` (tar.gz) from ``dataset``; returns counts."""
    sketches = packs_sketches(dataset)
    counts = {"files": 0, "sketch_frames": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(dataset / "dataset.json", arcname=f"{dataset.name}/dataset.json")
            for split in splits:
                for path in sorted((dataset / split).rglob("*")):
                    rel = path.relative_to(dataset)
                    if not path.is_file() or ".flow_cache" in rel.parts or drop & set(rel.parts):
                        continue
                    arc = f"{dataset.name}/{rel.as_posix()}"
                    if sketches and path.suffix == ".npy":
                        png, n_channels = packed_sketch(path)
                        info = tarfile.TarInfo(arc[:-len(".npy")] + f".{n_channels}ch{PACKED}")
                        info.size = len(png)
                        tar.addfile(info, io.BytesIO(png))
                        counts["sketch_frames"] += 1
                    else:
                        tar.add(path, arcname=arc)
                    counts["files"] += 1
    except BaseException:
        tmp.unlink(missing_ok=True)      # no half archive left behind
        raise
    tmp.replace(out)
    return {**counts, "bytes": out.stat().st_size}


def unpack(archive: Path, into: Path) -> int:
    """Extract ``archive`` into ``into`` and rebuild its packed sketches as ``.npy``; returns the count."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
        names = [m.name for m in tar.getmembers() if m.name.endswith(PACKED)]
    for name in names:
        path = into / name
        stem, channels = path.name[:-len(PACKED)].rsplit(".", 1)
        bits = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        np.save(path.with_name(stem + ".npy"), rebuild(bits, int(channels[:-2])))
        path.unlink()
    return len(names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("pack")
    p.add_argument("names", nargs="+", help="dataset folders under --datasets")
    p.add_argument("--datasets", type=Path, default=ROOT / ".cache" / "datasets")
    p.add_argument("--out", type=Path, default=ROOT / ".carry")
    p.add_argument("--splits", default="train", help="comma-separated (default: train)")
    p.add_argument("--drop", default="", help="folders left out, comma-separated (e.g. instance)")
    u = sub.add_parser("unpack")
    u.add_argument("archives", type=Path, help="a .tgz or a folder of them")
    u.add_argument("--into", type=Path, default=ROOT / ".cache" / "datasets")
    a = ap.parse_args(argv)
    if a.action == "pack":
        for name in a.names:
            counts = pack(a.datasets / name, a.out / f"{name}.tgz", a.splits.split(","),
                          {d for d in a.drop.split(",") if d})
            print(json.dumps({"dataset": name, **counts}), flush=True)
    else:
        a.into.mkdir(parents=True, exist_ok=True)
        archives = sorted(a.archives.glob("*.tgz")) if a.archives.is_dir() else [a.archives]
        for archive in archives:
            print(json.dumps({"archive": archive.name, "sketch_frames": unpack(archive, a.into)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
