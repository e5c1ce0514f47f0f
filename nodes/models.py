"""The ``vid2vid`` model folder and the loaded-model cache shared by the pack's nodes.

Folder: ComfyUI's ``folder_paths`` gets a ``vid2vid`` entry holding ComfyUI's ``models/vid2vid`` and the
pack's own ``models/vid2vid`` (where the sample models ship), plus any ``vid2vid:`` folder of an
extra_model_paths.yaml.  Registered with ``add_model_folder_path(name, path)``, the signature every host
has (newer hosts add ``is_default``).  Without ComfyUI the same list comes from the pack folder and
``$V2V_MODELS_DIR``.

Cache: a loaded generator is kept under ``(real path, mtime, size, device)``, so a re-queued prompt does
not reload it and a model file replaced on disk is reloaded.  At most :data:`CACHE_SIZE` models are kept.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from v2v.model.checkpoint import CheckpointError, load_generator

FOLDER_NAME = "vid2vid"
PACK_MODELS = Path(__file__).resolve().parent.parent / "models" / FOLDER_NAME
# Listed so that a .pth/.ckpt dropped into the folder shows up and gets the "not safetensors" message.
LISTED_EXTENSIONS = {".safetensors", ".pt", ".pth", ".ckpt", ".bin"}
CACHE_SIZE = 2

try:
    import folder_paths as _folder_paths
except Exception:  # noqa: BLE001  (no ComfyUI here)
    _folder_paths = None


def register_folder() -> None:
    """Add the ``vid2vid`` folder (ComfyUI's models dir and the pack's) to folder_paths; idempotent."""
    if _folder_paths is None:
        return
    wanted = [os.path.join(_folder_paths.models_dir, FOLDER_NAME), str(PACK_MODELS)]
    known = _folder_paths.folder_names_and_paths.get(FOLDER_NAME)
    have = list(known[0]) if known else []
    for path in wanted:
        if path not in have:
            _folder_paths.add_model_folder_path(FOLDER_NAME, path)  # old-host signature (name, path)
    paths = list(_folder_paths.folder_names_and_paths[FOLDER_NAME][0])
    _folder_paths.folder_names_and_paths[FOLDER_NAME] = (paths, set(LISTED_EXTENSIONS))
    getattr(_folder_paths, "filename_list_cache", {}).pop(FOLDER_NAME, None)


def model_dirs() -> list[Path]:
    if _folder_paths is not None:
        return [Path(p) for p in _folder_paths.get_folder_paths(FOLDER_NAME)]
    extra = [Path(p) for p in os.environ.get("V2V_MODELS_DIR", "").split(os.pathsep) if p]
    return extra + [PACK_MODELS]


def list_models() -> list[str]:
    """Model file names (relative to their folder) for the node's combo."""
    if _folder_paths is not None:
        return list(_folder_paths.get_filename_list(FOLDER_NAME))
    names = set()
    for folder in model_dirs():
        if folder.is_dir():
            names.update(str(p.relative_to(folder)) for p in folder.rglob("*")
                         if p.is_file() and p.suffix.lower() in LISTED_EXTENSIONS)
    return sorted(names)


def _inside(path: Path, folder: Path) -> bool:
    """``path`` lies in ``folder``, by its normalised name (``..`` resolved, symlinks not followed: a link a user
    put into a model folder is theirs to make)."""
    p, f = os.path.abspath(path), os.path.abspath(folder)
    try:
        return os.path.commonpath([p, f]) == f
    except ValueError:       # different drives
        return False


def _listing(dirs: list[Path]) -> str:
    return ", ".join(str(d) for d in dirs)


def _outside_message(what: str, dirs: list[Path]) -> str:
    return (f"{what} is outside the vid2vid model folders ({_listing(dirs)}); only files in those folders are "
            "opened: put the model there, or add its folder under 'vid2vid:' in ComfyUI's extra_model_paths.yaml")


def resolve_model(model_name: str = "", model_path: str = "") -> Path:
    """The model file: ``model_path`` when given (absolute, or relative to a vid2vid folder), else
    ``model_name`` from the folders.  Only files inside the registered vid2vid folders are returned (a path
    elsewhere, or one that climbs out with ``..``, is refused); ``CheckpointError`` otherwise."""
    dirs = model_dirs()
    if model_path and model_path.strip():
        p = Path(model_path.strip()).expanduser()
        candidates = [p] if p.is_absolute() else [d / p for d in dirs]
        inside = [c for c in candidates if any(_inside(c, d) for d in dirs)]
        if not inside:
            raise CheckpointError(_outside_message(f"model_path {model_path!r}", dirs))
        for c in inside:
            if c.is_file():
                return Path(os.path.abspath(c))
        raise CheckpointError(f"model_path {model_path!r}: no such file (absolute, or relative to {_listing(dirs)})")
    if not model_name:
        raise CheckpointError("no model chosen: pick model_name or set model_path")
    if Path(model_name).is_absolute() or not all(_inside(d / model_name, d) for d in dirs):
        raise CheckpointError(_outside_message(f"model {model_name!r}", dirs))
    if _folder_paths is not None:
        found = _folder_paths.get_full_path(FOLDER_NAME, model_name)
        if found and os.path.isfile(found) and any(_inside(Path(found), d) for d in dirs):
            return Path(os.path.abspath(found))
    for folder in dirs:
        c = folder / model_name
        if c.is_file():
            return Path(os.path.abspath(c))
    raise CheckpointError(f"model {model_name!r} is not in the vid2vid model folders ({_listing(dirs)})")


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def load_model(path: Path, device: str):
    """The generator at ``path`` on ``device``, from the cache when the file is unchanged."""
    key = (*fingerprint(path), str(device))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        for old in [k for k in _cache if k[0] == key[0] and k[3] == key[3]]:  # the file changed: drop stale copies
            del _cache[old]
    model = load_generator(path, device=device)
    with _lock:
        _cache[key] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return model


class ModelFileNode:
    """What every node that takes a model by ``model_name`` (or ``model_path``) checks: the file resolves inside
    the vid2vid folders before the graph runs, and the node reruns when the file changes."""

    @classmethod
    def VALIDATE_INPUTS(cls, model_name="", model_path=""):
        try:
            resolve_model(model_name, model_path)
        except CheckpointError as e:
            return str(e)
        return True

    @classmethod
    def IS_CHANGED(cls, model_name="", model_path="", **kwargs):
        try:
            return "|".join(map(str, fingerprint(resolve_model(model_name, model_path))))
        except (CheckpointError, OSError) as e:
            return f"invalid:{e}"


def clear_cache() -> None:
    with _lock:
        _cache.clear()


register_folder()
