"""v2v.media.video_io: lazy frame sources and atomic video/PNG writers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from v2v.media.video_io import VideoError, VideoWriter, frame_grid, natural_key, read_frames, read_image, write_image


def frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """A frame whose content identifies i: a bright vertical bar at x = 4*i on a grey background."""
    f = np.full((h, w, 3), 60, np.uint8)
    f[:, (4 * i) % w:(4 * i) % w + 4] = (250, 120, 20)
    return f


def write_png(path, image: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_natural_key_orders_numbers_by_value():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame100.png", "a.png"]
    assert sorted(names, key=natural_key) == ["a.png", "Frame1.png", "frame2.png", "frame10.png", "frame100.png"]


def test_folder_is_read_lazily_in_natural_order(tmp_path):
    for i in (10, 2, 1, 100):
        write_png(tmp_path / f"frame{i}.png", np.full((8, 6, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.png").write_bytes(b"ignored")
    source = read_frames(tmp_path)
    assert source.kind == "folder" and source.count == 4 and len(source) == 4
    assert source.size == (6, 8) and source.fps is None
    assert [int(f[0, 0, 0]) for f in source] == [1, 2, 10, 100]
    assert [int(f[0, 0, 0]) for f in source] == [1, 2, 10, 100]  # iterable more than once
    first = next(iter(source))
    assert first.dtype == np.uint8 and first.shape == (8, 6, 3)


def test_png_colours_are_rgb_and_gray_becomes_three_channels(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_png(tmp_path / "a.png", rgb)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4)
    cv2.imwrite(str(tmp_path / "ids.png"), gray)
    ids = read_image(tmp_path / "ids.png")
    assert ids.shape == (4, 4, 3) and (ids[..., 0] == gray).all() and (ids[..., 2] == gray).all()
    assert read_frames(tmp_path / "ids.png").count == 1


def test_mp4_round_trip(tmp_path):
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, fps=12, size=(64, 48)) as writer:
        for i in range(9):
            writer.write(frame(i))
    assert writer.count == 9
    source = read_frames(out)
    assert source.kind == "video" and source.size == (64, 48) and source.fps == pytest.approx(12)
    frames = list(source)
    assert len(frames) == 9 and (source.count in (None, 9))
    for i, f in enumerate(frames):
        assert f.shape == (48, 64, 3)
        assert np.abs(f.astype(int) - frame(i).astype(int)).mean() < 6  # lossy but close
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_png_folder_output_is_exact(tmp_path):
    out = tmp_path / "frames"
    with VideoWriter(out, fps=10) as writer:
        for i in range(3):
            writer.write(frame(i, 10, 6))
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    for i, f in enumerate(read_frames(out)):
        assert np.array_equal(f, frame(i, 10, 6))


def test_odd_sizes_are_padded_for_yuv420(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, fps=5) as writer:
        writer.write(frame(0, 33, 17))
    assert read_frames(out).size == (34, 18)


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, fps=5) as writer:
            writer.write(frame(0))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(out, fps=5) as writer:
        writer.write(frame(0))
    before = out.read_bytes()
    with pytest.raises(RuntimeError):
        with VideoWriter(out, fps=5) as writer:
            writer.write(frame(1))
            raise RuntimeError("boom")
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    folder = tmp_path / "pngs"
    with pytest.raises(RuntimeError):
        with VideoWriter(folder, fps=5) as writer:
            writer.write(frame(0))
            raise RuntimeError("boom")
    assert not folder.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_writer_errors(tmp_path):
    with pytest.raises(VideoError, match="no frames were written"):
        with VideoWriter(tmp_path / "empty.mp4", fps=5):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError, match="frame 1 is 32x32 but the video is 64x48"):
        with VideoWriter(tmp_path / "a.mp4", fps=5) as writer:
            writer.write(frame(0))
            writer.write(frame(1, 32, 32))
    with pytest.raises(VideoError, match="uint8"):
        with VideoWriter(tmp_path / "b.mp4", fps=5) as writer:
            writer.write(frame(0).astype(np.float32))
    with pytest.raises(VideoError, match="cannot write '.xyz'"):
        VideoWriter(tmp_path / "c.xyz", fps=5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.png").write_bytes(b"")
    with pytest.raises(VideoError, match="not an empty folder"):
        VideoWriter(tmp_path / "full", fps=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_reader_errors_name_the_culprit(tmp_path):
    with pytest.raises(VideoError, match="no such file or folder"):
        read_frames(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="folder has no image files"):
        read_frames(empty)

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoError, match="corrupt.mp4"):
        read_frames(corrupt)
    text = tmp_path / "notes.avi"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="notes.avi: cannot open as a video"):
        read_frames(text)

    bad_folder = tmp_path / "bad"
    bad_folder.mkdir()
    write_png(bad_folder / "f1.png", frame(0))
    (bad_folder / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    source = read_frames(bad_folder)
    with pytest.raises(VideoError, match=r"f2.png: cannot read this image"):
        list(source)

    sizes = tmp_path / "sizes"
    sizes.mkdir()
    write_png(sizes / "f1.png", frame(0))
    write_png(sizes / "f2.png", frame(1, 32, 32))
    with pytest.raises(VideoError, match=r"f2.png is 32x32 but the first frame is 64x48"):
        list(read_frames(sizes))


def test_truncated_video(tmp_path):
    out = tmp_path / "clip.mkv"
    with VideoWriter(out, fps=10) as writer:
        for i in range(20):
            writer.write(frame(i))
    data = out.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    # a cut matroska file still opens; it must either stop early or fail with a named error, never hang or crash
    try:
        frames = list(read_frames(cut))
    except VideoError as e:
        assert "cut.mkv" in str(e)
    else:
        assert 0 < len(frames) < 20
    header_only = tmp_path / "header.mkv"
    header_only.write_bytes(data[:40])
    with pytest.raises(VideoError, match="header.mkv"):
        list(read_frames(header_only))


def _frames(n, value):
    return [np.full((4, 6, 3), value + i, np.uint8) for i in range(n)]


def test_frame_grid_rows_and_evenly_spaced_columns(tmp_path):
    grid = frame_grid([_frames(9, 0), _frames(9, 100)], columns=3)
    assert grid.shape == (8, 18, 3)
    assert [grid[0, 6 * c, 0] for c in range(3)] == [0, 4, 8]        # frames 0, 4, 8 of row 0
    assert [grid[4, 6 * c, 0] for c in range(3)] == [100, 104, 108]
    assert np.array_equal(read_image(write_image(tmp_path / "sub" / "g.png", grid)), grid)


def test_frame_grid_and_write_image_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="equal length"):
        frame_grid([_frames(3, 0), _frames(4, 0)], columns=2)
    with pytest.raises(VideoError, match="could not write the image"):
        write_image(tmp_path / "g.unknownsuffix", _frames(1, 0)[0])


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_picked_frames_and_strided_views_are_the_frames_at_those_indices(tmp_path, kind):
    """``picks`` decodes a video once and converts only the frames asked for; views with a stride or ``only``
    read through it, and must give exactly the frames a full pass gives at those indices."""
    from v2v.media.video_io import open_video

    rng = np.random.default_rng(1)
    frames = [np.repeat((rng.random((24, 32, 1)) * 255).astype(np.uint8), 3, axis=2) for _ in range(11)]
    path = tmp_path / ("clip.mkv" if kind == "video" else "clip")
    with VideoWriter(path, fps=10, crf=0) as w:
        for f in frames:
            w.write(f)
    source = read_frames(path)
    every = list(source)
    assert [i for i, _ in source.picks([0, 3, 4, 10])] == [0, 3, 4, 10]
    assert all(np.array_equal(f, every[i]) for i, f in source.picks([0, 3, 4, 10]))
    view = open_video(path, start=1, stride=3)                       # base frames 1, 4, 7, 10
    assert [i for i, _ in view.frames()] == [0, 1, 2, 3]
    assert all(np.array_equal(f, every[1 + 3 * i]) for i, f in view.frames())
    assert [(i, np.array_equal(f, every[1 + 3 * i])) for i, f in view.frames(only={2, 0})] == [(0, True), (2, True)]
    assert [i for i, _ in view.frames(start=1, stop=3)] == [1, 2]
