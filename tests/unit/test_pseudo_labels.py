"""Pseudo-labels of real footage (vtest): frozen k-means ids, MOG2 person class, tracked person instances,
measured stability, streaming equals eager (file vs IMAGE batch, frames from k, only), recorded centres."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from v2v.media.video_io import open_video
from v2v.sources import extras, pseudo_labels as P
from v2v.sources.base import MovingRegions
from v2v.sources.labels import instance_boundary

REPO = Path(__file__).resolve().parents[2]
VTEST_CLIP = REPO / "tests" / "data" / "vtest_40f.mp4"
T, SIDE = 24, 256          # the clip as the tests here use it: 24 frames, 256x192


@pytest.fixture(scope="module")
def vtest_rgb() -> np.ndarray:
    """The frames the sources below decode: uint8 ``[24, 192, 256, 3]``."""
    return np.stack(list(open_video(VTEST_CLIP, max_frames=T, max_side=SIDE)))


def one_fit_thread():
    """k-means centres depend (in their last bits) on the number of OpenMP threads, which the suite's
    one_thread fixture changes between module set-up and the tests: fit with one thread everywhere."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


@pytest.fixture(scope="module")
def vtest_source():
    """Pseudo-labels made from the video FILE (centres fitted to it)."""
    with one_fit_thread():
        return P.pseudo_label_video(VTEST_CLIP, k=8, max_frames=T, max_side=SIDE)


@pytest.fixture(scope="module")
def vtest_frames(vtest_source):
    """The first stream of ``vtest_source`` (computed before any test streams it)."""
    return list(vtest_source.frames())


def fresh(vtest_source, **kw):
    """The same source made again with its centres given (no fit: only the moving-region model), so that a
    test controls every stream its MOG2 model has seen."""
    return P.pseudo_label_video(VTEST_CLIP, k=8, max_frames=T, max_side=SIDE,
                                centers=vtest_source.extra["labeler"].centers, **kw)


def _same(a, b, *, instance: bool = True) -> None:
    assert [f.index for f in a] == [f.index for f in b]
    for x, y in zip(a, b):
        assert torch.equal(x.tensor, y.tensor), f"frame {x.index}: tensors differ"
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.preview, y.preview)
        if instance:
            assert np.array_equal(x.instance, y.instance), f"frame {x.index}: instance maps differ"


def test_vtest_pseudo_labels_shape_classes_and_person(vtest_source, vtest_frames):
    src = vtest_source
    print("vtest pseudo-label report:", src.report)
    assert (len(src), src.label_nc, src.input_nc, src.size, src.fps) == (24, 9, 10, (192, 256), 10.0)
    assert [f.index for f in vtest_frames] == list(range(24))
    f = vtest_frames[5].tensor
    assert f.shape == (10, 192, 256) and f.dtype == torch.float32
    assert torch.all(f[:9].sum(0) == 1) and set(torch.unique(f[9]).tolist()) <= {0.0, 1.0}
    ids = np.stack([fr.ids for fr in vtest_frames])
    assert len(np.unique(ids)) == 9                                # every cluster and the person class are used
    for fr in vtest_frames:
        assert torch.equal(fr.tensor[:9].argmax(0), torch.from_numpy(fr.ids).long())
        assert torch.equal(fr.tensor[9].bool(), torch.from_numpy(instance_boundary(fr.instance)))
        assert fr.preview.shape == (192, 256, 3) and fr.preview.dtype == np.uint8
    foreground_share = float((ids == 8).mean())
    print("foreground share:", round(foreground_share, 4))
    assert 0.0005 < foreground_share < 0.05                       # a few pedestrians, not the whole street
    assert (ids == 8).any(axis=(1, 2)).mean() > 0.8               # persons found on most frames
    assert src.extra["label_names"][-1] == "person" and len(src.extra["label_names"]) == 9
    assert tuple(src.extra["palette"][8]) == (220, 20, 60)
    assert src.preview().shape == (8, 192, 256, 3)                # a bounded sample, spread over the clip
    assert src.report["k"] == 8 and src.report["person_masks"] == "mog2"


def test_instance_map_class_on_stuff_tracks_on_people(vtest_frames):
    """Instance map: the class id on stuff, 1000 + track on people; walkers keep their track id."""
    for fr in vtest_frames:
        stuff = fr.ids < 8
        assert np.array_equal(fr.instance[stuff], fr.ids[stuff])
        assert (fr.instance[~stuff] >= P.PERSON_ID_BASE).all()
    tracks_per_frame = [set(np.unique(fr.instance[fr.ids == 8]).tolist()) for fr in vtest_frames]
    all_tracks = set().union(*tracks_per_frame)
    # tracks persist: far fewer tracks over the clip than person blobs summed over frames
    assert len(all_tracks) < 0.5 * sum(len(t) for t in tracks_per_frame)
    longest = max(sum(t in s for s in tracks_per_frame) for t in all_tracks)
    assert longest >= 20                                          # someone is followed over most of the clip


def test_vtest_pseudo_labels_are_stable_over_time(vtest_source, vtest_frames, vtest_rgb):
    rep = P.label_flip_share((f.ids for f in vtest_frames), iter(vtest_rgb))
    print("vtest label flip share (24 frames, 256 px):", {k: v for k, v in rep.items() if k != "per_frame"})
    # measured here (24 frames, 256 px): 0.0056 aligned vs 0.0141 unaligned
    assert rep["aligned"] < 0.02
    assert rep["aligned"] < rep["unaligned"]
    assert rep["valid"] > 0.9 and len(rep["per_frame"]) == 23
    # measure_stability streams the source and its video again: the same numbers over its first frames
    first8 = P.label_flip_share([f.ids for f in vtest_frames[:8]], vtest_rgb[:8])
    assert P.measure_stability(vtest_source, max_frames=8) == first8
    assert P.label_flip_share(iter([]), iter([]))["per_frame"] == []


def test_streaming_equals_eager_file_and_image_batch(vtest_source, vtest_frames, vtest_rgb):
    """The same pseudo-labels from the video file and from its frames as an IMAGE batch (0..1), frame for
    frame (the batch fits its own centres: the same); frames(start=k) equals the full stream from k (class
    ids and boundaries need no history; only the track numbering restarts); only={...} gives just those."""
    images = torch.from_numpy(vtest_rgb).float() / 255
    with one_fit_thread():
        from_batch = P.pseudo_label_video(images, k=8, fps=10.0)
    assert (len(from_batch), from_batch.size, from_batch.fps) == (24, (192, 256), 10.0)
    assert np.array_equal(from_batch.extra["labeler"].centers, vtest_source.extra["labeler"].centers)
    assert from_batch.recipe == vtest_source.recipe
    _same(list(from_batch.frames()), vtest_frames)
    for k in (7, 20):
        from_k = list(fresh(vtest_source).frames(start=k))
        _same(from_k, vtest_frames[k:], instance=False)
        for a, b in zip(from_k, vtest_frames[k:]):      # the same blobs, maybe numbered anew
            people = a.ids == 8
            assert np.array_equal(a.instance[~people], b.instance[~people])
            pairs = set(zip(a.instance[people].tolist(), b.instance[people].tolist()))
            assert len(pairs) == len({p for p, _ in pairs}) == len({q for _, q in pairs})
    only = list(fresh(vtest_source).frames(only={17, 3}))
    _same(only, [vtest_frames[3], vtest_frames[17]], instance=False)
    assert [f.index for f in from_batch.frames(only={0, 23, 99})] == [0, 23]
    _same(list(fresh(vtest_source).frames(4, 6)), vtest_frames[4:6], instance=False)


def test_given_centers_reproduce_the_fitted_ids_and_are_recorded(vtest_source, vtest_frames):
    """Centres fitted on one source (as a model records them in its recipe) reproduce exactly that source's
    ids on the same video, with no fit; the recipe records k, person and the centres."""
    fitted = vtest_source.recipe.params["centers"]
    assert np.allclose(np.asarray(fitted), vtest_source.extra["labeler"].centers, atol=1e-6)
    for centers in (fitted, vtest_source.extra["labeler"].centers):
        again = P.pseudo_label_video(VTEST_CLIP, k=8, max_frames=T, max_side=SIDE, centers=centers)
        assert again.recipe.params["k"] == 8 and again.recipe.params["person"] == "mog2"
        assert again.recipe.params["centers"] == fitted
        assert again.recipe.extractor == "pseudo_labels" and again.recipe.kind == "label"
        _same(list(again.frames(0, 12)), vtest_frames[:12])
    # the recipe rebuilds the same source from the raw video (what generate does with a model's recipe)
    rebuilt = again.recipe.build(open_video(VTEST_CLIP, max_frames=T, max_side=SIDE))
    _same(list(rebuilt.frames(only={0, 11, 23})), [vtest_frames[i] for i in (0, 11, 23)], instance=False)
    # other settings are recorded as given
    other = P.pseudo_label_video(VTEST_CLIP, k=8, max_frames=4, max_side=128, centers=fitted, person="none",
                                 instances=False)
    assert other.recipe.params["person"] == "none" and other.recipe.params["instances"] is False
    assert other.input_nc == 9 and not any((f.ids == 8).any() for f in other.frames())
    with pytest.raises(ValueError):
        P.pseudo_label_video(VTEST_CLIP, k=5, max_frames=2, max_side=64, centers=fitted)   # 8 centres, k=5


def test_centers_are_frozen_and_ids_reproducible(vtest_rgb):
    a = P.PseudoLabeler(k=6).fit(vtest_rgb)
    b = P.PseudoLabeler(k=6).fit(open_video(VTEST_CLIP, max_frames=T, max_side=SIDE))   # the same frames, lazily
    assert np.allclose(a.centers, b.centers)
    ids = a.predict(vtest_rgb[3])
    assert ids.shape == (192, 256) and ids.dtype == np.int32
    assert np.array_equal(ids, b.predict(vtest_rgb[3]))
    top, bottom = ids[:20].mean(), ids[-20:].mean()
    assert top < bottom                                            # ids ordered top to bottom
    with pytest.raises(RuntimeError, match="fit must run"):
        P.PseudoLabeler().predict(vtest_rgb[0])


def test_person_tracker_keeps_ids_of_moving_blobs_and_numbers_new_ones():
    tracker = P.PersonTracker()
    H, W = 60, 80
    seen = []
    for t in range(10):
        mask = np.zeros((H, W), bool)
        mask[20:40, 5 + 3 * t: 15 + 3 * t] = True                # a walker, 3 px a frame
        if t >= 5:
            mask[45:55, 60:70] = True                            # someone new from frame 5
        tracks = tracker(mask)
        assert tracks.shape == (H, W) and (tracks[~mask] == 0).all() and (tracks[mask] > 0).all()
        walker = np.unique(tracks[20:40, 5 + 3 * t: 15 + 3 * t])
        assert len(walker) == 1
        seen.append(int(walker[0]))
        if t >= 5:
            newcomer = np.unique(tracks[45:55, 60:70])
            assert len(newcomer) == 1 and newcomer[0] != walker[0]
            if t == 5:
                first_newcomer = int(newcomer[0])
            assert newcomer[0] == first_newcomer
    assert len(set(seen)) == 1                                   # one id for the walker all along
    # a blob that jumps far (no overlap) is someone else; an empty frame ends every track
    jump = np.zeros((H, W), bool)
    jump[0:10, 0:10] = True
    assert tracker(jump)[5, 5] not in (seen[0], first_newcomer)
    tracker(np.zeros((H, W), bool))
    again = tracker(jump)[5, 5]
    assert again not in (seen[0], first_newcomer)
    # reset(): a new shot, new ids (numbering goes on, so ids are never reused)
    before = tracker.next_id
    tracker.reset()
    assert tracker(jump)[5, 5] == before + 1
    assert P.PersonTracker()(np.zeros((4, 4), bool)).max() == 0


def test_flip_share_uses_flow_alignment():
    rng = np.random.default_rng(0)
    blocks = (rng.random((10, 14, 3)) * 255).astype(np.uint8)
    base = np.kron(blocks, np.ones((8, 8, 1), np.uint8))               # 80x112 texture of 8 px blocks
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(4)])  # pans 2 px per frame
    ids = (frames[..., 0] > 127).astype(np.int32)
    st = P.label_flip_share(ids, frames, max_side=512)
    assert st["unaligned"] > 0.05 and st["aligned"] < 0.02
    # streams of pairs: generators give the same numbers as arrays
    assert P.label_flip_share(iter(ids), (f for f in frames), max_side=512) == st


def test_selfie_masks_without_mediapipe_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda name: None)   # mediapipe absent everywhere
    monkeypatch.setattr(extras, "REPO", tmp_path)
    monkeypatch.delenv("V2V_MEDIAPIPE_PYTHON", raising=False)
    with pytest.raises(extras.MissingExtraError, match=r"mediapipe==0\.10\.21"):
        P.PersonMasks("selfie", np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(extras.MissingExtraError, match=r"mediapipe==0\.10\.21"):
        P.pseudo_label_video(np.zeros((2, 16, 16, 3), np.uint8), k=2, person="both", centers=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="person mask method"):
        P.PersonMasks("magic", np.zeros((1, 16, 16, 3), np.uint8))
    none = P.PersonMasks("none", np.zeros((1, 16, 16, 3), np.uint8))
    assert none.open() is None and not none(np.zeros((16, 16, 3), np.uint8)).any()


def test_mog2_person_masks_find_the_walkers(vtest_rgb):
    masks = P.PersonMasks("mog2", open_video(VTEST_CLIP, max_frames=T, max_side=SIDE))
    assert masks.open() is None                                   # no worker for MOG2
    m = masks(vtest_rgb[5])
    assert m.shape == (192, 256) and m.dtype == bool and 0.0005 < m.mean() < 0.05


@pytest.mark.skipif(not extras.has_mediapipe(), reason="mediapipe extra absent: " + extras.INSTALL["mediapipe"])
def test_selfie_masks_with_mediapipe(vtest_rgb):
    masks = P.PersonMasks("selfie", vtest_rgb[:2])
    with masks.open() as session:
        m = [masks(rgb, session) for rgb in vtest_rgb[:2]]
    assert all(x.shape == (192, 256) and x.dtype == bool for x in m)


def test_missing_sklearn_gives_the_install_command(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    with pytest.raises(extras.MissingExtraError, match="pip install scikit-learn"):
        P.PseudoLabeler().fit(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(extras.MissingExtraError, match="pip install scikit-learn"):
        P.pseudo_label_video(np.zeros((1, 8, 8, 3), np.uint8), person="none")


def test_label_loader_node_pseudo(vtest_rgb):
    from nodes.label_video_loader import LabelVideoLoader

    images = torch.from_numpy(vtest_rgb[:8]).float() / 255
    source, preview = LabelVideoLoader().load("pseudo", 0, True, images=images, pseudo_k=5, fps=10.0)
    assert (source.label_nc, source.input_nc, len(source), source.fps) == (6, 7, 8, 10.0)
    assert preview.shape == images.shape and 0 <= preview.min() and preview.max() <= 1
    assert source.recipe.extractor == "pseudo_labels" and source.recipe.params["k"] == 5
    assert len(source.recipe.params["centers"]) == 5
    # the preview is the source's preview (compared on a twin: a second preview() of the same source can
    # differ, see test_moving_regions_mask_leaves_the_model_unchanged)
    twin = P.pseudo_label_video(images, k=5, fps=10.0, centers=source.recipe.params["centers"])
    assert torch.equal(preview, twin.preview())


def test_every_stream_starts_from_the_fitted_background_model(vtest_rgb):
    """cv2's MOG2 changes its state even at learning rate 0, so masks depend on the frames masked before; each
    stream therefore starts from the model as fitted: the same frames give the same labels every time."""
    batch = torch.from_numpy(vtest_rgb[:8]).float() / 255
    regions = MovingRegions().fit(open_video(batch))
    first = regions.mask(vtest_rgb[0])
    regions.mask(vtest_rgb[3])                              # a stream moves the state on ...
    assert np.array_equal(regions.fresh().mask(vtest_rgb[0]), first)   # ... a new one starts as fitted
    source = P.pseudo_label_video(batch, k=5)
    one, two = source.preview(), source.preview()
    assert torch.equal(one, two)
    a, b = [f.ids for f in source.frames()], [f.ids for f in source.frames()]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_centers_fitted_over_several_videos_cover_colours_only_one_of_them_has():
    """A dataset of many clips fits one set of centres over all of them: a colour that only the second clip shows
    gets its own id."""
    rng = np.random.default_rng(0)
    grey = np.full((4, 48, 64, 3), 128, np.uint8)
    grey[:, :24] = 60                                              # a dark top, a grey bottom
    green = grey.copy()
    green[:, 24:] = (30, 200, 40)                                  # the second clip's bottom is green
    grey = np.clip(grey + rng.integers(-3, 4, grey.shape), 0, 255).astype(np.uint8)
    both = P.PseudoLabeler(k=3).fit([grey, green])
    assert len(np.unique(both.predict(green[0])[30:])) == 1
    assert both.predict(green[0])[40, 10] != both.predict(grey[0])[40, 10]   # green and grey: different ids
    assert len(both.centers) == 3
