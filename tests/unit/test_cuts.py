"""v2v.media.cuts: online shot-cut detection (footage and rendered sources) and the explicit cut list."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from v2v.media.cuts import CutDetector, detect_cuts, parse_cut_frames
from v2v.media.video_io import read_frames

ROOT = Path(__file__).resolve().parents[2]
VTEST = ROOT / "tests" / "data" / "vtest_40f.mp4"                     # 768x576 static street camera
CARPHONE = ROOT / "workflows" / "input" / "vid2vid_carphone_60f.mp4"   # 176x144 talking head in a car
SIZE = (176, 144)


# ---- synthetic scenes ------------------------------------------------------------------------------

def scene(kind: str, t: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Frame ``t`` of a continuous synthetic shot (moving shapes), drawn at 160x120 and resized to ``size``."""
    w, h = 160, 120
    img = np.zeros((h, w, 3), np.uint8)
    if kind == "disc":      # blue-cyan gradient sky, a red ball rolling right
        img[:] = np.linspace((20, 60, 200), (40, 200, 220), h).astype(np.uint8)[:, None]
        cv2.circle(img, (20 + 3 * t, 70), 18, (220, 30, 30), -1)
    elif kind == "boxes":   # olive wall, two dark crates sliding
        img[:] = (150, 140, 60)
        cv2.rectangle(img, (10 + 2 * t, 10 + t), (60 + 2 * t, 50 + t), (40, 30, 30), -1)
        cv2.rectangle(img, (100, 60 + t), (150, 110 + t), (90, 20, 90), -1)
    elif kind == "stripes":  # grey and magenta diagonal stripes panning left
        yy, xx = np.mgrid[:h, :w]
        on = ((xx + yy + 3 * t) // 40) % 2 == 0
        img[on] = (200, 60, 180)
        img[~on] = (90, 90, 90)
    else:
        raise ValueError(kind)
    if size != (w, h):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
    return img


def stick_figures(xs: list[float], t: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Skeleton-like rendering: coloured stick figures walking right on black (OpenPose style)."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    for x0 in xs:
        x, top = int((x0 + 0.01 * t) * w), int(0.2 * h)
        neck, hip, foot = (x, top + h // 10), (x, top + h // 3), top + int(0.6 * h)
        swing = int(0.06 * w * np.sin(0.5 * t))
        lines = [((x, top), neck, (255, 0, 0)), (neck, hip, (0, 255, 0)),
                 (neck, (x - w // 12 + swing, top + h // 4), (255, 170, 0)),
                 (neck, (x + w // 12 - swing, top + h // 4), (170, 255, 0)),
                 (hip, (x - swing, foot), (0, 170, 255)), (hip, (x + swing, foot), (0, 85, 255))]
        for a, b, colour in lines:
            cv2.line(img, a, b, colour, max(1, w // 80))
    return img


def shots(*parts: tuple[str, int]) -> tuple[list[np.ndarray], list[int]]:
    frames, cuts = [], []
    for kind, n in parts:
        if frames:
            cuts.append(len(frames))
        frames += [scene(kind, t) for t in range(n)]
    return frames, cuts


# ---- committed real clips ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_splice() -> tuple[list[np.ndarray], list[int]]:
    """vtest 0-19 | carphone 0-19 | vtest 20-39, all at 176x144: new shots start at 20 and 40."""
    vtest = [cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in read_frames(VTEST)]
    carphone = list(read_frames(CARPHONE))
    assert len(vtest) == 40 and len(carphone) == 60 and carphone[0].shape[:2] == (SIZE[1], SIZE[0])
    return vtest[:20] + carphone[:20] + vtest[20:40], [20, 40]


def canny(frame: np.ndarray) -> np.ndarray:
    """White 1-px Canny edges on black, as RGB."""
    edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 100, 200)
    return np.repeat(edges[:, :, None], 3, axis=2)


def test_real_splice_finds_exactly_the_cuts(real_splice):
    frames, cuts = real_splice
    detector = CutDetector()
    scores, found = [], []
    for i, frame in enumerate(frames):
        if detector(frame):
            found.append(i)
        scores.append(detector.score)
    assert found == cuts
    within = max(s for i, s in enumerate(scores) if i not in cuts)
    assert within < 0.3 * detector.threshold and min(scores[c] for c in cuts) > 1.5 * detector.threshold


def test_real_splice_rendered_as_canny_edges(real_splice):
    frames, cuts = real_splice
    assert detect_cuts(canny(f) for f in frames) == cuts
    # the same at twice the size (thinner lines relative to the frame)
    big = [canny(cv2.resize(f, (2 * SIZE[0], 2 * SIZE[1]), interpolation=cv2.INTER_LINEAR)) for f in frames]
    assert detect_cuts(big) == cuts


def test_committed_clips_alone_have_no_cuts():
    assert detect_cuts(read_frames(VTEST)) == []
    assert detect_cuts(read_frames(CARPHONE)) == []


# ---- synthetic ---------------------------------------------------------------------------------------

def test_synthetic_clip_finds_exactly_its_cuts():
    frames, cuts = shots(("disc", 12), ("boxes", 15), ("stripes", 13), ("disc", 10))
    assert cuts == [12, 27, 40]
    assert detect_cuts(frames) == cuts


@pytest.mark.parametrize("size", [(60, 40), (1920, 1080)])
def test_any_frame_size(size):
    frames = [scene("boxes", t, size) for t in range(10)] + [scene("stripes", t, size) for t in range(10)]
    assert detect_cuts(frames) == [10]
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]  # [H, W] frames work too
    assert detect_cuts(gray) == [10]


def test_skeletons_on_black_and_detector_dropouts():
    walk = [stick_figures([0.3], t) for t in range(12)]
    other = [stick_figures([0.1, 0.6], t) for t in range(12)]
    blank = np.zeros_like(walk[0])
    assert detect_cuts(walk + other) == [12]
    # a frame where nobody was detected is skipped, not a cut (neither into nor out of it) ...
    assert detect_cuts(walk[:6] + [blank] + walk[7:] + other) == [12]
    # ... and a cut through a blank frame is reported on the first frame with content
    assert detect_cuts(walk + [blank] + other) == [13]
    # content after a long blank run starts afresh, like after reset()
    assert detect_cuts(walk + [blank] * 3 + other) == []
    assert detect_cuts(walk + [blank] * 3 + other, max_blank=3) == [15]


def test_fast_accelerating_pan_stays_quiet_because_of_the_adaptive_rule():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((240, 2400, 3)).astype(np.float32), (0, 0), 6)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames, x = [], 0
    for t in range(40):  # a whip pan: 2 px/frame accelerating to 41 px/frame over a 160 px wide view
        frames.append(np.ascontiguousarray(texture[60:180, x:x + 160]))
        x += 2 + t
    assert detect_cuts(frames) == []
    assert detect_cuts(frames, margin=0) != []  # the absolute threshold alone would fire


def test_first_frame_is_never_a_cut_and_reset_forgets():
    a, b = scene("disc", 0), scene("stripes", 0)
    detector = CutDetector()
    assert detector(a) is False and detector.score == 0.0
    assert detector(b) is True
    assert detector.score == detector.last_score > detector.threshold
    detector.reset()
    assert detector.score == 0.0
    assert detector(b) is False  # first frame after reset, however different from the last one
    assert detector(b) is False and detector.score == pytest.approx(0.0, abs=1e-6)
    assert detector(a) is True   # min_gap does not reach back across reset()


def test_min_gap_between_cuts():
    frames, cuts = shots(("disc", 10), ("boxes", 3), ("stripes", 10))
    assert cuts == [10, 13]
    assert detect_cuts(frames) == [10]
    assert detect_cuts(frames, min_gap=3) == [10, 13]


def test_bad_frames_and_parameters():
    detector = CutDetector()
    with pytest.raises(ValueError, match="uint8"):
        detector(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        detector(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        detector([[0, 0, 0]])
    with pytest.raises(ValueError, match="threshold"):
        CutDetector(threshold=0)
    with pytest.raises(ValueError, match="min_gap"):
        CutDetector(min_gap=0)
    with pytest.raises(TypeError):
        detect_cuts([], not_a_parameter=1)


# ---- parse_cut_frames ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("120, 300 450", (120, 300, 450)),
    ("450,120,,300", (120, 300, 450)),
    (" 7\n3\t5 , 5 ", (3, 5, 7)),
    ("0", (0,)),
    ("", ()),
    (" , ", ()),
])
def test_parse_cut_frames_accepts(text, expected):
    assert parse_cut_frames(text) == expected


@pytest.mark.parametrize("text, bad", [("120, -5, 300", "-5"), ("1.5", "1.5"), ("12a 30", "12a"),
                                       ("10;20", "10;20"), ("+3", "+3"), ("1e3", "1e3")])
def test_parse_cut_frames_rejects_naming_the_token(text, bad):
    with pytest.raises(ValueError, match=repr(bad).replace("+", r"\+").replace(".", r"\.")):
        parse_cut_frames(text)
