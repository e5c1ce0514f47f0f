"""Frames in and out of disk, lazily: folders of images, single images and video files (PyAV).

Frames are ``uint8`` numpy arrays ``[H, W, 3]`` in RGB order.  Sizes are ``(width, height)``
like PIL and OpenCV.  Nothing here knows about the model.

* :func:`read_frames` opens a folder of images (natural order: ``frame2`` before ``frame10``),
  a single image, or a video file, and iterates its frames one at a time.
* :class:`VideoWriter` writes an H.264 mp4 (libx264, yuv420p) or, for a path without an
  extension, a folder of PNGs.  It writes under a temporary name and renames on success, so
  an interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..files import temporary_beside

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts")
_WRITE_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov"}


class VideoError(ValueError):
    """A frame source or destination that cannot be used (the message names the file)."""


def natural_key(name: str) -> list:
    """Sort key that orders digit runs by value: ``frame2`` < ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike, pattern: str | None = None) -> list[Path]:
    """Image files in ``folder`` (optionally matching a glob ``pattern``) in natural order, hidden files skipped."""
    folder = Path(folder)
    files = folder.glob(pattern) if pattern else folder.iterdir()
    return sorted((p for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


def _to_rgb8(image: np.ndarray, where: str) -> np.ndarray:
    """OpenCV image (BGR/BGRA/gray, 8 or 16 bit) -> RGB uint8 [H, W, 3]."""
    if image.dtype == np.uint16:
        if image.max() > 255:
            raise VideoError(f"{where}: 16-bit image with values above 255; save it as 8-bit")
        image = image.astype(np.uint8)
    elif image.dtype != np.uint8:
        raise VideoError(f"{where}: unsupported pixel type {image.dtype}; use 8-bit images")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    raise VideoError(f"{where}: unsupported channel count {image.shape[2]}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file -> RGB uint8 [H, W, 3] (grayscale ids become R = G = B = id)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such image file")
    data = np.fromfile(str(path), dtype=np.uint8)  # np + imdecode: works with any path encoding
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VideoError(f"{path}: cannot read this image (corrupt or not an image)")
    return _to_rgb8(image, str(path))


class FrameSource:
    """Lazily iterable frames of a folder, an image or a video.  Iterate it as often as you like.

    Attributes: ``path``, ``kind`` ("folder" | "image" | "video"), ``count`` (frames, None when a
    video does not say), ``fps`` (float, None for folders and images), ``size`` (width, height).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(f"{self.path}: no such file or folder")
        self.fps: float | None = None
        self.count: int | None = None
        self._files: list[Path] = []
        if self.path.is_dir():
            self.kind = "folder"
            self._files = list_images(self.path)
            if not self._files:
                raise VideoError(f"{self.path}: folder has no image files ({', '.join(IMAGE_EXTENSIONS)})")
            self.count = len(self._files)
            first = read_image(self._files[0])
        elif self.path.suffix.lower() in IMAGE_EXTENSIONS:
            self.kind = "image"
            self._files = [self.path]
            self.count = 1
            first = read_image(self.path)
        else:
            self.kind = "video"
            first = self._probe_video()
        self.size = (first.shape[1], first.shape[0])

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def frame_name(self, index: int) -> str:
        """How error messages name frame ``index``: its file name, or ``video.mp4#index``."""
        return self._files[index].name if self._files else f"{self.path.name}#{index}"

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError(f"{self.path}: frame count unknown")
        return self.count

    def __repr__(self) -> str:
        return f"FrameSource({str(self.path)!r}, kind={self.kind}, count={self.count}, fps={self.fps}, size={self.size})"

    # ---- video -----------------------------------------------------------------------------------
    def _open(self):
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise VideoError(f"{self.path}: cannot open as a video ({e})") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.path}: has no video stream")
        return container

    def _probe_video(self) -> np.ndarray:
        container = self._open()
        try:
            stream = container.streams.video[0]
            if stream.average_rate:
                self.fps = float(stream.average_rate)
            elif stream.guessed_rate:
                self.fps = float(stream.guessed_rate)
            self.count = int(stream.frames) or None
            first = next((frame for _, frame in self._decode(container, [0])), None)
        finally:
            container.close()
        if self.count is None and first is not None:   # the header does not say: count the packets
            container = self._open()
            try:
                self.count = self._demux_count(container)
            finally:
                container.close()
        if first is None:
            raise VideoError(f"{self.path}: video has no decodable frames (empty, truncated or corrupt?)")
        return first

    @staticmethod
    def _demux_count(container) -> int | None:
        """Frames of a video whose header does not say, by counting its packets (no decoding: fast)."""
        import av

        try:
            n = sum(1 for packet in container.demux(video=0) if packet.size)
        except av.error.FFmpegError:
            return None
        return n or None

    def _decode(self, container, picks: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` at the ascending indices ``picks``; the other frames are decoded but never converted
        to RGB (the conversion costs about half as much as the decoding).  Stops after the last pick."""
        import av

        index = 0
        wanted = iter(picks)
        nxt = next(wanted, None)
        container.streams.video[0].thread_type = "AUTO"     # frame threads: decoding is the CLI's other big cost
        try:
            if nxt is None:
                return
            for frame in container.decode(video=0):
                if index == nxt:
                    yield index, frame.to_ndarray(format="rgb24")
                    nxt = next(wanted, None)
                    if nxt is None:
                        return
                index += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: cannot decode frame {index} ({e})") from None

    # ---- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_from(0)

    def iter_from(self, start: int = 0) -> Iterator[np.ndarray]:
        """Frames ``start, start + 1, ...`` (a folder reads only those files; a video decodes from its start)."""
        if self.kind == "video":
            yield from (frame for _, frame in self._iter_video(itertools.count(start)))
            return
        for path in self._files[start:]:
            frame = read_image(path)
            self._check_size(frame, str(path))
            yield frame

    def read(self, index: int) -> np.ndarray:
        """One frame: a file of a folder directly; a video decodes up to it (use iteration for many)."""
        if self.kind != "video":
            frame = read_image(self._files[index])
            self._check_size(frame, str(self._files[index]))
            return frame
        for _, frame in self._iter_video([index]):
            return frame
        raise VideoError(f"{self.path} has no frame {index}")

    def picks(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` for the ascending ``indices``: a folder reads just those files, a video decodes once
        up to the last and converts just those frames."""
        if self.kind != "video":
            for i in indices:
                yield i, self.read(i)
            return
        yield from self._iter_video(indices)

    def _iter_video(self, picks: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        container = self._open()
        try:
            for index, frame in self._decode(container, picks):
                self._check_size(frame, f"{self.path} frame {index}")
                yield index, frame
        finally:
            container.close()

    def _check_size(self, frame: np.ndarray, where: str) -> None:
        size = (frame.shape[1], frame.shape[0])
        if size != self.size:
            raise VideoError(f"{where} is {size[0]}x{size[1]} but the first frame is {self.size[0]}x{self.size[1]}; "
                             "all frames must have the same size")


def read_frames(path: str | os.PathLike) -> FrameSource:
    """Open a folder of images, an image or a video file; frames are read lazily when iterated."""
    return FrameSource(path)


class ArrayFrames:
    """Frames already in memory (a ComfyUI IMAGE batch ``[N, H, W, C]`` in 0..1, or uint8 ``[N, H, W, 3]``),
    with FrameSource's interface.  Each frame is converted to uint8 only when it is read, so nothing the
    size of the batch is allocated again."""

    kind = "array"

    def __init__(self, batch, fps: float | None = None) -> None:
        if hasattr(batch, "detach"):
            batch = batch.detach().cpu()
        if batch.ndim == 3:
            batch = batch[None]
        if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
            raise VideoError(f"an image batch must be [N, H, W, C] with C in 1, 3, 4; got shape {tuple(batch.shape)}")
        if len(batch) == 0:
            raise VideoError("the image batch is empty (0 frames)")
        self.batch, self.fps, self.count = batch, fps, int(batch.shape[0])
        self.size = (int(batch.shape[2]), int(batch.shape[1]))
        self.path = None

    def frame_name(self, index: int) -> str:
        return f"frame {index}"

    def __len__(self) -> int:
        return self.count

    def read(self, index: int) -> np.ndarray:
        f = np.asarray(self.batch[index])
        if f.dtype != np.uint8:
            f = np.clip(np.rint(f.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        if f.shape[-1] == 1:
            f = np.repeat(f, 3, axis=-1)
        return np.ascontiguousarray(f[..., :3])

    def iter_from(self, start: int = 0) -> Iterator[np.ndarray]:
        for i in range(start, self.count):
            yield self.read(i)

    def picks(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        for i in indices:
            yield i, self.read(i)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_from(0)


class Video:
    """A video's RGB uint8 frames, decoded lazily with edits applied to each frame as it is decoded: a frame
    range (``start``, ``stride``, ``max_frames``), a ``crop=(x, y, width, height)`` window, then a resize
    (``size=(h, w)`` exactly, or ``max_side`` to shrink so the longer side is at most that).

    The base is a file, folder or image path (:class:`FrameSource`), or an in-memory batch
    (:class:`ArrayFrames`).  Iterating decodes again from the start and keeps no frame, so memory does not
    grow with the video's length; :meth:`edit` returns a new view with other edits (the same base).
    ``fps`` is the base's frame rate divided by the stride (``fps=`` overrides; None when unknown).
    """

    def __init__(self, base: FrameSource | ArrayFrames, *, fps: float | None = None, start: int = 0,
                 stride: int = 1, max_frames: int | None = None, crop: tuple[int, int, int, int] | None = None,
                 max_side: int | None = None, size: tuple[int, int] | None = None) -> None:
        from .resize import crop_frame, shrink_to

        self.base = base
        self.edits = dict(fps=fps, start=int(start), stride=max(1, int(stride)), max_frames=max_frames, crop=crop,
                          max_side=max_side, size=None if size is None else (int(size[0]), int(size[1])))
        total = base.count
        if total is None:
            raise VideoError(f"{base.path}: cannot tell how many frames this video has")
        if start < 0 or start >= total:
            raise VideoError(f"{self.describe()}: start frame {start} is past its last frame ({total - 1})")
        n = len(range(start, total, self.edits["stride"]))
        self.count = n if not max_frames or max_frames <= 0 else min(n, int(max_frames))
        w, h = base.size
        if crop is not None:
            crop_frame(np.zeros((h, w), np.uint8), crop, what=self.describe())   # refuse a bad window now
            w, h = int(crop[2]), int(crop[3])
        if size is not None:
            h, w = self.edits["size"]
        elif max_side:
            h, w = shrink_to((h, w), int(max_side))
        self.height, self.width = h, w
        rate = fps or base.fps
        self.fps = None if not rate else float(rate) / (1 if fps else self.edits["stride"])

    @property
    def path(self) -> Path | None:
        return self.base.path

    def describe(self) -> str:
        return str(self.base.path) if self.base.path is not None else "the image batch"

    def edit(self, **changes) -> "Video":
        """The same base with some edits replaced, e.g. ``video.edit(size=(192, 256))``."""
        return Video(self.base, **{**self.edits, **changes})

    def __len__(self) -> int:
        return self.count

    def frame_name(self, i: int) -> str:
        """How messages name frame ``i`` of this view: the file, or ``video.mp4#k`` (k: the base's index)."""
        return self.base.frame_name(self.edits["start"] + i * self.edits["stride"])

    def _apply(self, frame: np.ndarray) -> np.ndarray:
        from .resize import crop_frame, resize_image

        if self.edits["crop"] is not None:
            frame = crop_frame(frame, self.edits["crop"], what=self.describe())
        return resize_image(frame, (self.height, self.width))

    def frames(self, start: int = 0, stop: int | None = None, only: set[int] | None = None
               ) -> Iterator[tuple[int, np.ndarray]]:
        """``(i, frame)`` for frames ``start .. stop - 1`` of this view; with ``only``, just those indices
        (the others are decoded but not converted or edited)."""
        stop = self.count if stop is None else min(int(stop), self.count)
        first, stride = self.edits["start"], self.edits["stride"]
        want = range(start, stop) if only is None else sorted(i for i in only if start <= i < stop)
        for k, frame in self.base.picks(first + i * stride for i in want):
            yield (k - first) // stride, self._apply(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frame in self.frames():
            yield frame

    def __repr__(self) -> str:
        return f"Video({self.describe()!r}, frames={self.count}, size={self.width}x{self.height}, fps={self.fps})"


def open_video(video, **edits) -> Video:
    """A :class:`Video` view of a path (file, folder of images, image), an IMAGE/uint8 batch, or a Video
    (``edits`` replace its own)."""
    if isinstance(video, Video):
        return video.edit(**edits) if edits else video
    if isinstance(video, (str, os.PathLike)):
        return Video(read_frames(video), **edits)
    return Video(ArrayFrames(video), **edits)


def frame_grid(rows: Sequence[Sequence[np.ndarray]], columns: int) -> np.ndarray:
    """One uint8 RGB image from frame sequences of equal length and size: a row per sequence, ``columns``
    evenly spaced frames (first and last included) across (the README strips)."""
    lengths = {len(r) for r in rows}
    if len(lengths) != 1 or not rows:
        raise ValueError(f"frame_grid needs rows of equal length, got lengths {sorted(lengths)}")
    picks = np.linspace(0, lengths.pop() - 1, columns).round().astype(int)
    return np.concatenate([np.concatenate([row[i] for i in picks], axis=1) for row in rows], axis=0)


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write a uint8 RGB image (PNG or JPEG by the suffix); the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    except cv2.error:          # OpenCV raises for a suffix it has no encoder for
        ok = False
    if not ok:
        raise VideoError(f"{path}: could not write the image (use .png or .jpg, in a writable folder)")
    return path


class VideoWriter:
    """Write RGB uint8 frames to ``path``: an .mp4/.m4v/.mov/.mkv (H.264, yuv420p) or, with no extension,
    a folder of ``000000.png, 000001.png, ...``.

    Use as a context manager; the output appears under ``path`` only when the block exits without an
    error (an existing file is then replaced; an existing non-empty folder is refused up front).
    ``size`` is (width, height); None takes the first frame's size.  yuv420p needs even sizes, so an
    odd width/height is padded by one replicated column/row (the model's frames are always even).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, size: tuple[int, int] | None = None,
                 *, crf: int = 18) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        if not self.fps > 0:
            raise VideoError(f"{self.path}: fps must be > 0, got {fps}")
        self.size = tuple(size) if size is not None else None
        self.crf = crf
        self.count = 0
        suffix = self.path.suffix.lower()
        if suffix == "":
            self.kind = "folder"
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise VideoError(f"{self.path} already exists and is not an empty folder; choose another output")
        elif suffix in _WRITE_CONTAINERS:
            self.kind = "video"
            if self.path.is_dir():
                raise VideoError(f"{self.path} is a folder; give a file name like out.mp4")
        else:
            raise VideoError(f"{self.path}: cannot write {suffix!r}; use .mp4, .mov, .mkv or a folder path without extension")
        self._tmp: Path | None = None
        self._container = None
        self._stream = None

    # ---- context manager -------------------------------------------------------------------------
    def __enter__(self) -> "VideoWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        # beside the final name, with the umask's mode; leftovers of a killed earlier run are removed
        self._tmp = temporary_beside(self.path, folder=self.kind == "folder",
                                     suffix="" if self.kind == "folder" else self.path.suffix)

    def _start_video(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self._tmp), mode="w", format=_WRITE_CONTAINERS[self.path.suffix.lower()])
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf)}

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame [H, W, 3]."""
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write outside 'with' (or after close)")
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise VideoError(f"{self.path}: frames must be uint8 [H, W, 3] RGB arrays, got {got}")
        size = (frame.shape[1], frame.shape[0])
        if self.size is None:
            self.size = size
        if size != self.size:
            raise VideoError(f"{self.path}: frame {self.count} is {size[0]}x{size[1]} but the video is "
                             f"{self.size[0]}x{self.size[1]}")
        if self.kind == "folder":
            target = self._tmp / f"{self.count:06d}.png"
            ok, data = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if not ok:
                raise VideoError(f"{target}: PNG encoding failed")
            data.tofile(str(target))
        else:
            import av

            if self._container is None:
                self._start_video(*self.size)
            h, w = frame.shape[:2]
            if w % 2 or h % 2:  # yuv420p: pad odd sizes by replicating the last row/column
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(packet_frame):
                self._container.mux(packet)
        self.count += 1

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._tmp is None:
            return
        try:
            if self.count == 0:
                raise VideoError(f"{self.path}: no frames were written")
            if self.kind == "video":
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
                self._container = None
                with open(self._tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(self._tmp, self.path)
            else:
                if self.path.is_dir():       # checked empty in __init__
                    self.path.rmdir()
                os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._tmp = None

    def abort(self) -> None:
        """Drop everything written so far; the final name is left as it was."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        if self._tmp is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None
