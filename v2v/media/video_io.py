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

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

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
            first = next(self._decode(container), None)
        finally:
            container.close()
        if first is None:
            raise VideoError(f"{self.path}: video has no decodable frames (empty, truncated or corrupt?)")
        return first

    def _decode(self, container) -> Iterator[np.ndarray]:
        import av

        index = 0
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: cannot decode frame {index} ({e})") from None

    # ---- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "video":
            yield from self._iter_video()
            return
        for path in self._files:
            frame = read_image(path)
            self._check_size(frame, str(path))
            yield frame

    def _iter_video(self) -> Iterator[np.ndarray]:
        container = self._open()
        try:
            for index, frame in enumerate(self._decode(container)):
                self._check_size(frame, f"{self.path} frame {index}")
                yield frame
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "folder":
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                        dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(name)

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
