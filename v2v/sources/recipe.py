"""The source recipe: what a model eats, recorded in its file, so any raw video becomes that source.

A :class:`SourceRecipe` names the extractor that made a model's training sources, its settings (for
pseudo-labels also the colour/position centres fitted once, so that ANY video gets the label ids the model
was trained on) and the scale it ran at relative to the frames the model saw (``extract_scale``: the body
model's poses were found at 320x240 and its skeletons shrunk to 160x120 by the trainer's loader).

* ``train/prepare.py`` writes the recipe of the sources it extracts into ``dataset.json``; the trainer copies
  it into the model file (metadata key ``v2v.source``) with the extraction scale it measured.
* ``python -m v2v generate`` and Vid2VidGenerate read it back: a raw video is turned into exactly that
  source (:func:`source_for`), and a source made elsewhere is checked against it (:func:`check`), with an
  error naming both when they differ.

Extractors (each builds a lazy :class:`v2v.sources.base.SourceVideo` from a decoded video):

========================  ==========  ===============================================================
``extractor``             kind        made by
========================  ==========  ===============================================================
``pseudo_labels``         label       :func:`v2v.sources.pseudo_labels.pseudo_label_video`
``face_sketch``           sketch      :func:`v2v.sources.sketch.face_sketch` (dlib 68 landmarks)
``edge_sketch``           sketch      :func:`v2v.sources.sketch.edge_sketch` (Canny)
``pose``                  pose        :func:`v2v.sources.pose.pose_video` (mediapipe, or keypoints given)
``label_maps``            label       :func:`v2v.sources.labels.label_video` (a segmenter's maps: no video in)
========================  ==========  ===============================================================
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .base import SourceError, SourceVideo, extraction_size, resized

METADATA_KEY = "v2v.source"
KIND_OF = {"pseudo_labels": "label", "label_maps": "label", "face_sketch": "sketch", "edge_sketch": "sketch",
           "pose": "pose"}
FROM_VIDEO = ("pseudo_labels", "face_sketch", "edge_sketch", "pose")
# settings fitted to the data rather than chosen: a source with other fitted values is re-made with the model's
FITTED = {"pseudo_labels": ("centers",)}
# how a detector searches, not what the source means: not compared
FREE = {"pose": ("crops",), "face_sketch": ("upsample",)}
DESCRIPTIONS = {
    "pseudo_labels": "pseudo-labels of footage (k-means colour/position classes + a moving-person class)",
    "label_maps": "label maps from a segmenter or a dataset",
    "face_sketch": "a face sketch (dlib 68 landmarks as part polylines + Canny edges outside the face)",
    "edge_sketch": "an edge sketch (Canny)",
    "pose": "OpenPose-18 body skeletons (mediapipe keypoints)",
}


@dataclass(frozen=True)
class SourceRecipe:
    """How a source is made: ``extractor`` (a key of :data:`KIND_OF`), its ``params`` (JSON values, the
    extractor function's keyword arguments) and ``extract_scale`` (extraction resolution / model frames)."""

    extractor: str
    params: dict[str, Any] = field(default_factory=dict)
    extract_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.extractor not in KIND_OF:
            raise ValueError(f"unknown source extractor {self.extractor!r}; known: {sorted(KIND_OF)}")
        if not self.extract_scale > 0:
            raise ValueError(f"extract_scale must be > 0, got {self.extract_scale}")

    @property
    def kind(self) -> str:
        return KIND_OF[self.extractor]

    def to_dict(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "params": self.params, "extract_scale": self.extract_scale}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SourceRecipe":
        unknown = set(data) - {"extractor", "params", "extract_scale"}
        if unknown or "extractor" not in data:
            raise ValueError(f"a source recipe has keys extractor, params, extract_scale; got {sorted(data)}")
        return cls(str(data["extractor"]), dict(data.get("params") or {}), float(data.get("extract_scale", 1.0)))

    def with_(self, **changes) -> "SourceRecipe":
        return SourceRecipe(**{**self.to_dict(), **changes})

    def describe(self) -> str:
        """One line for people: the extractor and the settings that differ from its defaults."""
        shown = {k: v for k, v in self.params.items() if k not in FITTED.get(self.extractor, ())}
        settings = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        return f"{DESCRIPTIONS[self.extractor]}" + (f" [{settings}]" if settings else "")

    def build(self, video, *, progress=None) -> SourceVideo:
        """This source extracted from ``video`` (a path, an image batch or a :class:`v2v.media.video_io.Video`)
        at the video's own size."""
        if self.extractor not in FROM_VIDEO:
            raise SourceError(f"this model was trained on {DESCRIPTIONS[self.extractor]}, which cannot be made "
                              "from a raw video here: give the label maps themselves (a folder of id PNGs)")
        if self.extractor == "pseudo_labels":
            from .pseudo_labels import pseudo_label_video as make
        elif self.extractor == "face_sketch":
            from .sketch import face_sketch as make
        elif self.extractor == "edge_sketch":
            from .sketch import edge_sketch as make
        else:
            from .pose import pose_video as make
        return make(video, progress=progress, **self.params)


def source_for(recipe: SourceRecipe, video, size: tuple[int, int] | None = None, *, progress=None) -> SourceVideo:
    """The recipe's source of ``video`` at ``size=(h, w)`` (None: the video's size): extracted at ``size`` x
    ``extract_scale``, then resized to ``size`` as the trainer's loader resized the training sources; at the
    video's own size, extracted as it is (as :meth:`SourceVideo.at_size` keeps it)."""
    from .base import video_input

    video = video_input(video)
    if size is None or tuple(size) == (video.height, video.width):
        return recipe.build(video, progress=progress)
    at = extraction_size(size, recipe.extract_scale)
    source = recipe.build(video.edit(size=at, max_side=None), progress=progress)
    return source if source.size == tuple(size) else resized(source, tuple(size))


def to_json(recipe: SourceRecipe | None) -> str | None:
    return None if recipe is None else json.dumps(recipe.to_dict(), sort_keys=True)


def from_json(text: str | None, *, where: str = "model") -> SourceRecipe | None:
    """A recipe from its JSON (None stays None); a damaged one is a ValueError naming ``where``."""
    if not text:
        return None
    try:
        return SourceRecipe.from_dict(json.loads(text))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: its source recipe ({METADATA_KEY!r} metadata) is damaged: {e}") from None


def read_recipe(path) -> SourceRecipe | None:
    """The recipe recorded in a model file, or None (a model from before recipes, or from elsewhere)."""
    from ..model.checkpoint import read_metadata

    return from_json(read_metadata(path).get(METADATA_KEY), where=str(path))


def differences(model: SourceRecipe, source: SourceRecipe) -> dict[str, tuple[Any, Any]]:
    """Chosen settings that differ, ``{name: (model's, source's)}`` (fitted values are not compared)."""
    skip = FITTED.get(model.extractor, ()) + FREE.get(model.extractor, ())
    keys = (set(model.params) | set(source.params)) - set(skip)
    return {k: (model.params.get(k), source.params.get(k)) for k in sorted(keys)
            if model.params.get(k) != source.params.get(k)}


def check(model: SourceRecipe | None, source: SourceVideo, *, model_name: str = "the model") -> SourceVideo:
    """``source`` ready for a model with recipe ``model``: the same source, or re-made with the model's fitted
    values (pseudo-label centres); otherwise a SourceError naming both recipes.  Sources whose making is
    unknown (renderings, arrays), label maps given as they are, and models without a recipe pass: only their
    channels can be checked (by the pipeline)."""
    theirs = source.recipe
    if model is None or theirs is None:
        return source
    if theirs.extractor == "label_maps" and model.kind == "label":    # maps given as they are (e.g. prepared
        return source                                                # pseudo-labels): only channels can tell
    if theirs.extractor != model.extractor:
        raise SourceError(f"{model_name} was trained on {model.describe()}, but the connected source is "
                          f"{theirs.describe()}: make the source the way the model was trained "
                          f"(`python -m v2v info --model ...` shows its recipe)")
    diff = differences(model, theirs)
    if diff:
        listing = "; ".join(f"{k}: model {a!r}, source {b!r}" for k, a, b in ((k, *v) for k, v in diff.items()))
        raise SourceError(f"{model_name} was trained on {model.describe()}, but the connected source was made "
                          f"with other settings ({listing}): set them as the model's")
    fitted = FITTED.get(model.extractor, ())
    if any(model.params.get(k) != theirs.params.get(k) for k in fitted):
        if source.video is None:
            raise SourceError(f"the source's {', '.join(fitted)} differ from {model_name}'s and it cannot be "
                              "re-made (no video behind it)")
        remade = model.build(source.video)
        return remade if remade.size == source.size else resized(remade, source.size)
    return source
