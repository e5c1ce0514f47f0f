"""bench/evaluate.py and bench/long_video.py on tiny synthetic data: a random-weight model saved in tmp and
a 6-frame moving-shapes dataset in the trainer's layout (labels + instance maps + RGB targets)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bench import branch_psnr as bp, evaluate as ev, long_video as lv
from train.data import write_toy_dataset
from v2v.model.checkpoint import load_generator, save_generator
from v2v.model.config import GeneratorConfig
from v2v.model.generator import Vid2VidGenerator
from v2v.media.metrics import psnr, to_uint8_frames, warping_error
from v2v.sampler import StreamingSampler
from v2v.sources.labels import instance_boundary
from v2v.media.tensors import uint8_to_model
from v2v.toy import LABEL_NC
from v2v.media.video_io import read_image

TINY = dict(ngf=4, n_downsample=1, n_blocks=2, n_local_blocks=1, fg_n_blocks=1)
N_FRAMES, SIZE = 6, 32




@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_toy_dataset(root / "data", n_sequences=2, n_frames=N_FRAMES, height=SIZE, width=SIZE)
    paths = {}
    for name, seed, overrides in (("full", 0, {}), ("perframe", 1, {"use_flow": False})):
        torch.manual_seed(seed)
        cfg = GeneratorConfig(input_nc=LABEL_NC + 1, label_nc=LABEL_NC, **TINY, **overrides)
        paths[name] = save_generator(Vid2VidGenerator(cfg), root / f"{name}.safetensors")
    return data, paths, root


def test_pingpong_indices():
    assert lv.pingpong_indices(4, 10) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert lv.pingpong_indices(1, 3) == [0, 0, 0]
    assert lv.pingpong_indices(5, 0) == []
    idx = lv.pingpong_indices(80, 2000)
    assert len(idx) == 2000 and set(idx) == set(range(80))
    assert all(abs(b - a) == 1 for a, b in zip(idx, idx[1:]))     # no jump anywhere, turning points included
    assert idx[79] == 79 and idx[80] == 78 and idx[158] == 0 and idx[159] == 1
    with pytest.raises(ValueError):
        lv.pingpong_indices(0, 5)


def test_load_heldout_reads_the_val_split(setup):
    data, _, _ = setup
    seqs = ev.load_heldout(data)
    assert [s.name for s in seqs] == ["toy001"]            # the val sequence only
    s = seqs[0]
    assert len(s) == N_FRAMES and s.size == f"{SIZE}x{SIZE}"
    assert s.sources[0].shape == (LABEL_NC, SIZE, SIZE)     # one-hot; the source view adds the boundary channel
    assert torch.all(s.sources[0].sum(0) == 1)
    assert s.instances is not None and s.real[0].dtype == np.uint8


def with_boundary(src: torch.Tensor, inst: np.ndarray) -> torch.Tensor:
    """One-hot labels + the instance-boundary channel of their instance map."""
    return torch.cat([src, torch.from_numpy(instance_boundary(inst).astype(np.float32))[None]])


def test_generate_frames_policies(setup):
    data, paths, _ = setup
    seq = ev.load_heldout(data)[0]
    model = load_generator(paths["full"])
    free = ev.generate_frames(model, seq, first_frame=False)
    given = ev.generate_frames(model, seq, first_frame=True)
    assert len(free) == len(given) == N_FRAMES
    assert np.array_equal(given[0], seq.real[0]) and not np.array_equal(free[0], seq.real[0])
    # the same stream as feeding the sampler by hand (instance boundary included)
    sampler = StreamingSampler(model)
    by_hand = [to_uint8_frames(sampler.step(with_boundary(src, inst)))[0] for src, inst in zip(seq.sources, seq.instances)]
    assert all(np.array_equal(a, b) for a, b in zip(free, by_hand))


@pytest.mark.parametrize("first_frame", [False, True])
def test_evaluate_main(setup, first_frame, capsys):
    data, paths, root = setup
    out = root / f"eval_{first_frame}.json"
    args = ["--data", str(data), "--models", str(paths["full"]), str(paths["perframe"]),
            "--names", "ours", "per-frame", "--machine", "test box", "--out", str(out),
            "--strip", str(root / f"strip_{first_frame}.png")]
    assert ev.main(args + (["--first-frame"] if first_frame else [])) == 0
    report = json.loads(out.read_text())
    assert report["machine"] == "test box" and "--data" in report["command"]
    assert report["baseline"] == "per-frame"               # the one use_flow=false model, picked by itself
    assert report["first_frame_given"] is first_frame
    assert [r["name"] for r in report["summary"]] == ["ours", "per-frame", "real video", "still real frame 0"]
    seq = report["sequences"][0]
    scored = N_FRAMES - 1 if first_frame else N_FRAMES
    assert seq["frames_scored"] == scored
    ours = seq["models"]["ours"]
    assert len(ours["psnr_per_frame"]) == scored and len(ours["warping_error_per_pair"]) == scored - 1
    # the numbers are the project's metrics on the same frames, recomputed independently here
    heldout = ev.load_heldout(data)[0]
    frames = ev.generate_frames(load_generator(paths["full"]), heldout, first_frame=first_frame)
    skip = int(first_frame)
    real = heldout.real[skip:]
    expect_psnr = float(psnr(ev.as_model_tensor(frames[skip:]), ev.as_model_tensor(real)).mean())
    assert ours["psnr_db"] == pytest.approx(expect_psnr, abs=1e-6)
    assert ours["warping_error"] == pytest.approx(warping_error(real, frames[skip:]).mean, abs=0.05)
    # the strip: rows real, ours, per-frame; 5 evenly spaced frames, first and last included
    strip = read_image(root / f"strip_{first_frame}.png")
    h, w = real[0].shape[:2]
    assert strip.shape == (3 * h, 5 * w, 3)
    assert np.array_equal(strip[:h, :w], heldout.real[0]) and np.array_equal(strip[h:2 * h, -w:], frames[-1])
    assert seq["references"]["real video"]["warping_error"] == pytest.approx(warping_error(real, real).mean,
                                                                             abs=0.05)
    still = seq["references"]["still real frame 0"]
    if first_frame:   # the still frame is the first real frame, not among the scored frames
        assert still["psnr_db"] < 60
    base = report["summary"][1]
    assert base["warping_vs_baseline_pct"] == pytest.approx(0.0) and base["psnr_vs_baseline_db"] == 0.0
    lines = report["table"].splitlines()
    assert lines[2] in capsys.readouterr().out
    assert len(lines) == 2 + 4 and lines[2].startswith("| ours |") and lines[5].startswith("| *still real frame 0*")
    assert f"{scored} held-out frames" in lines[0]


def test_first_frame_from_an_image_model(setup):
    data, paths, root = setup
    seq = ev.load_heldout(data)[0]
    full, per_frame = load_generator(paths["full"]), load_generator(paths["perframe"])
    res = ev.evaluate_sequence([("ours", full)], seq, first_frame=False, first_frame_model=per_frame, log=lambda m: None)
    assert res["frames_scored"] == N_FRAMES                  # nothing real given: every frame scored
    start = ev.generate_frames(per_frame, seq, first_frame=False)[0]
    assert np.array_equal(ev.single_frame(per_frame, seq), start)
    ours = ev.generate_frames(full, seq, first_frame=start)
    assert np.array_equal(ours[0], start) and not np.array_equal(ours, ev.generate_frames(full, seq, first_frame=False))
    assert res["models"]["ours"]["psnr_per_frame"][0] == pytest.approx(
        float(psnr(ev.as_model_tensor([start]), ev.as_model_tensor(seq.real[:1]))[0]), abs=1e-3)
    with pytest.raises(SystemExit):
        ev.main(["--data", str(data), "--models", str(paths["full"]), "--first-frame",
                 "--first-frame-model", str(paths["perframe"]), "--out", str(root / "x.json")])


def test_landmark_following_with_a_fake_detector():
    rng = np.random.default_rng(0)
    real_lm = rng.uniform(10, 50, (4, 68, 2)).astype(np.float32)
    real_lm[3] = np.nan                                   # no face on the real frame 3: not compared
    shifted = real_lm + np.array([3.0, 4.0], np.float32)  # 5 px off everywhere

    def detector(frames):
        assert frames.shape == (4, 8, 8, 3)
        lm = shifted.copy()
        lm[1] = np.nan
        return lm, ["detected", "missing", "tracked", "detected"]

    r = ev.landmark_following(real_lm, [np.zeros((8, 8, 3), np.uint8)] * 4, detector)
    assert r["landmark_error_px"] == pytest.approx(5.0, abs=1e-4)
    assert r["landmark_frames_compared"] == 2
    assert r["detection_rate"] == 0.5 and r["landmark_rate"] == 0.75
    assert r["landmark_error_per_frame"][1] is None and r["landmark_error_per_frame"][3] is None


def test_long_video_stream_and_windows(setup):
    data, paths, _ = setup
    seq = ev.load_heldout(data)[0]
    model = load_generator(paths["full"])
    total, window = 31, 7                          # period 2 * (6 - 1) = 10: three loop periods after frame 0
    idx = lv.pingpong_indices(N_FRAMES, total)
    per = lv.stream_long_video(model, seq, idx, window=window)
    assert all(len(per[k]) == total for k in ("psnr", "ssim", "warping_error", "warping_error_real"))
    assert math.isnan(per["warping_error"][0]) and not math.isnan(per["warping_error"][1])
    # the looped ground truth follows the same indices: PSNR of frame t is against real[idx[t]]
    sampler = StreamingSampler(model)
    for t, i in enumerate(idx[:12]):
        frame = to_uint8_frames(sampler.step(with_boundary(seq.sources[i], seq.instances[i])))
        assert per["psnr"][t] == pytest.approx(float(psnr(ev.as_model_tensor(list(frame)),
                                                          ev.as_model_tensor([seq.real[i]]))[0]), abs=1e-5)
    # the real looped video repeats itself every period
    for t in range(1, 10):
        assert per["warping_error_real"][t] == per["warping_error_real"][t + 10] == per["warping_error_real"][t + 20]
    s = lv.summarise(per, window=window, period=10)
    assert [(w["start"], w["end"]) for w in s["windows"]] == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 31)]
    assert s["periods"] == 3
    assert s["drift_same_content"]["warping_error_real"] == pytest.approx(0.0, abs=1e-9)
    assert s["drift"]["psnr"] == pytest.approx(s["windows"][-1]["psnr"] - s["windows"][0]["psnr"])


def test_long_video_main(setup):
    data, paths, root = setup
    out = root / "long.json"
    assert lv.main(["--data", str(data), "--model", str(paths["perframe"]), "--frames", "25", "--window", "10",
                    "--first-frame", "--machine", "test box", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == 25 and len(report["windows"]) == 3 and report["period"] == 10
    assert report["per_frame"]["psnr"][0] is None          # the given real frame is not scored
    assert report["per_frame"]["warping_error"][1] is None  # nor the pair that starts at it
    assert report["machine"] == "test box" and all(w["rss_mb"] for w in report["windows"])
    assert report["table"].count("\n") == 1 + 3 + 2


# ---------------------------------------------------------------------------------------------------------
# body: pose condition following, evaluation size
def _person(points: dict[int, tuple[float, float]], W: int, H: int, conf: float = 0.9):
    from v2v.sources.pose import Person

    body = np.zeros((18, 3), np.float32)
    for j, (x, y) in points.items():
        body[j] = (x / W, y / H, conf)
    return Person(body)


def test_pose_following_matches_people_and_measures_pixels():
    from v2v.sources.pose import PoseFrame

    W, H = 200, 100
    a = {1: (40, 20), 8: (35, 50), 11: (45, 50), 10: (35, 90), 13: (45, 90)}     # neck, hips, ankles
    b = {1: (120, 25), 8: (115, 55), 11: (125, 55), 10: (115, 92), 13: (125, 92)}
    shift = lambda pts, dx, dy: {j: (x + dx, y + dy) for j, (x, y) in pts.items()}   # noqa: E731
    real = [PoseFrame(W, H, [_person(a, W, H), _person(b, W, H)]),
            PoseFrame(W, H, [_person(a, W, H), _person(b, W, H)])]
    # frame 0: both found, listed in the other order, 3-4-5 px off; frame 1: only b, plus a far false positive
    low = _person(shift(b, 3, 4), W, H)
    low.body[10, 2] = 0.2                                        # not confident: this joint is not compared
    ours = [PoseFrame(W, H, [_person(shift(b, 3, 4), W, H), _person(shift(a, -3, 4), W, H)]),
            PoseFrame(W, H, [low, _person(shift(a, 90, 0), W, H)])]
    r = ev.pose_following(real, ours)
    assert r["keypoint_error_px"] == pytest.approx(5.0, abs=1e-4)
    assert r["keypoints_compared"] == 5 + 5 + 4
    assert r["person_recall"] == pytest.approx(3 / 4) and r["person_precision"] == pytest.approx(3 / 4)
    assert r["people_per_frame"] == 2 and r["people_matched"] == 3
    assert r["keypoint_error_per_frame"] == [pytest.approx(5.0), pytest.approx(5.0)]
    # two people side by side: closest pairs first, not the first pair within reach (c'-d is 18 px, c'-c 5 px)
    c = {1: (60, 20), 8: (56, 50), 11: (64, 50), 10: (56, 90), 13: (64, 90)}
    d = shift(c, 15, 0)
    close = ev.pose_following([PoseFrame(W, H, [_person(c, W, H), _person(d, W, H)])],
                              [PoseFrame(W, H, [_person(shift(d, -3, 4), W, H), _person(shift(c, 3, 4), W, H)])])
    assert close["keypoint_error_px"] == pytest.approx(5.0, abs=1e-4) and close["person_recall"] == 1
    # the real people found in the real frames themselves: no error, all found
    same = ev.pose_following(real, real)
    assert same["keypoint_error_px"] == 0 and same["person_recall"] == 1
    # a person moved by more than half its height is not found; nobody at all gives None, not a crash
    far = ev.pose_following(real[:1], [PoseFrame(W, H, [_person(shift(a, 0, 40), W, H)])])
    assert far["person_recall"] == 0 and far["keypoint_error_px"] is None and far["person_precision"] == 0
    empty = ev.pose_following(real[:1], [PoseFrame(W, H, [])])
    assert empty["person_precision"] is None and empty["keypoint_error_per_frame"] == [None]
    with pytest.raises(ValueError):
        ev.pose_following(real, ours[:1])


def test_pose_following_in_evaluate_sequence(setup):
    """A fake extractor that finds the same person in every real frame and nobody in ours."""
    from v2v.sources.pose import PoseFrame

    data, paths, _ = setup
    seq = ev.load_heldout(data)[0]
    calls = []

    def poser(frames):
        calls.append(len(frames))
        real = all(np.array_equal(a, b) for a, b in zip(frames, seq.real))
        people = [_person({1: (10, 5), 8: (9, 20), 11: (12, 20)}, SIZE, SIZE)] if real else []
        return [PoseFrame(SIZE, SIZE, list(people)) for _ in frames], {"people_total": len(people) * len(frames)}

    res = ev.evaluate_sequence([("ours", load_generator(paths["full"]))], seq, first_frame=True, poser=poser,
                               log=lambda m: None)
    assert calls == [N_FRAMES, N_FRAMES]                   # the whole clip, real and ours, frame 0 included
    assert res["references"]["real video"]["people_per_frame"] == 1
    assert res["references"]["still real frame 0"]["keypoint_error_px"] == 0
    row = res["models"]["ours"]
    assert row["person_recall"] == 0 and row["keypoint_error_px"] is None and row["people_per_frame"] == 0
    assert row["keypoint_error_per_frame"] == [None] * (N_FRAMES - 1)   # the given real frame 0 is not scored
    assert row["pose_extractor"] == {"people_total": 0}


def test_body_options_size_and_missing_mediapipe(setup, monkeypatch):
    from v2v.sources import extras

    data, paths, root = setup
    small = ev.load_heldout(data, size=(16, 24))[0]
    assert small.size == "24x16" and small.sources[0].shape == (LABEL_NC, 16, 24)
    assert small.instances[0].shape == (16, 24) and set(np.unique(small.sources[0].sum(0).numpy())) == {1.0}
    record = root / "full.json"
    record.write_text(json.dumps({"command": "train/train.py --set data.load_size=[8,8] --set x=1 "
                                             "--set data.load_size=[16,24]"}))   # the last override wins
    assert ev.training_load_size(root / "full.safetensors") == (16, 24)
    assert ev.prepare_settings("body")["crop"] == (384, 128, 320, 240) and ev.prepare_settings("nope") == {}
    monkeypatch.setattr(extras, "has_mediapipe", lambda: False)
    out = root / "body.json"
    try:
        assert ev.main(["--data", str(data), "--models", str(paths["full"]), "--pose", "on", "--out", str(out)]) == 0
    finally:
        record.unlink()
    report = json.loads(out.read_text())
    assert report["load_size"] == [16, 24] and report["sequences"][0]["size"] == "24x16"
    assert report["condition_following"] is None and "mediapipe" in report["condition_following_unavailable"]
    assert report["summary"][0]["keypoint_error_px"] is None and report["summary"][0]["person_recall"] is None
    assert "keypoint error px" in report["table"]


def test_branch_psnr_replays_the_sampler(setup, tmp_path):
    data, _, _ = setup
    seq = ev.load_heldout(data)[0]
    torch.manual_seed(3)
    model = Vid2VidGenerator(GeneratorConfig(input_nc=LABEL_NC, label_nc=LABEL_NC, **TINY)).eval()
    stats = bp.branch_stats(model, seq)
    sampler = StreamingSampler(model)
    outs = [sampler.step(s) for s in seq.sources]
    L = model.cfg.n_past
    reals = [uint8_to_model(r)[None] for r in seq.real]
    expected = np.mean([float(psnr(o, r)) for o, r in zip(outs[L:], reals[L:])])
    assert stats["output"] == pytest.approx(expected, abs=2e-3)   # the same frames as the nodes' sampler
    assert 0 <= stats["mask_mean"] <= 1 and {"hallucinated", "warped"} <= set(stats)
    assert stats["forced_share"] == 0                              # no foreground prior: nothing forced
    fg = Vid2VidGenerator(GeneratorConfig(input_nc=LABEL_NC, label_nc=LABEL_NC, foreground=True, fg_label_ids=(1,),
                                          **TINY)).eval()
    share = np.mean([float((s.argmax(0) == 1).float().mean()) for s in seq.sources[L:]])
    assert share > 0 and bp.branch_stats(fg, seq)["forced_share"] == pytest.approx(share, abs=2e-3)


def test_sources_from_each_models_recipe(setup):
    """--sources recipe: a model meets the held-out footage through its own recorded recipe (as from a raw video),
    not through the dataset's sources; a model without a recipe is refused."""
    from v2v.sources.recipe import METADATA_KEY, SourceRecipe, to_json
    from v2v.sources.sketch import edge_sketch

    data, paths, root = setup
    seq = ev.load_heldout(data)[0]
    torch.manual_seed(2)
    cfg = GeneratorConfig(input_nc=1, label_nc=0, **TINY)
    recipe = SourceRecipe("edge_sketch", {"sigma": 0.33, "blur": 3})
    path = save_generator(Vid2VidGenerator(cfg), root / "edges.safetensors",
                          extra_metadata={METADATA_KEY: to_json(recipe)})
    model = load_generator(path)
    made = [f.tensor for f in ev.heldout_source(model, seq, [0, 2, 4], from_recipe=True).frames()]
    expected = [f.tensor for f in edge_sketch(np.stack([seq.real[i] for i in (0, 2, 4)])).frames()]
    assert len(made) == 3 and all(torch.equal(a, b) for a, b in zip(made, expected))
    frames = ev.generate_frames(model, seq, first_frame=False, from_recipe=True)
    assert len(frames) == N_FRAMES and frames[0].shape == seq.real[0].shape
    with pytest.raises(SystemExit, match="records no source recipe"):
        ev.heldout_source(load_generator(paths["full"]), seq, [0], from_recipe=True)


def test_the_condition_following_measure_comes_from_the_datasets_recipe(tmp_path):
    """--landmarks/--pose auto follow what the sources are (the extractor in dataset.json), not the dataset's name."""
    def dataset(name, recipe):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(json.dumps({"source_recipe": recipe} if recipe else {}))
        return tmp_path / name

    assert ev.auto_following(dataset("my_faces", {"extractor": "face_sketch", "params": {}})) == "landmarks"
    assert ev.auto_following(dataset("dancers", {"extractor": "pose", "params": {}})) == "pose"
    assert ev.auto_following(dataset("face", {"extractor": "pseudo_labels", "params": {}})) is None
    assert ev.auto_following(dataset("old", None)) is None and ev.auto_following(tmp_path / "missing") is None
