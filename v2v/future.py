"""Future video prediction (paper Sec. 4), in two stages.

1. A *predictor* (a Vid2VidGenerator whose inputs and outputs are label maps, trained by ``train/train.py`` with
   ``data.predict: true``) continues the observed label maps: it warps its last map with the flow it estimates and
   hallucinates what appears, frame after frame, each prediction fed back as the next step's past.
2. A vid2vid *renderer* (any label -> video model) turns the predicted maps into frames, starting from the last
   observed real frames when they are given.

Both stages stream through :class:`v2v.sampler.StreamingSampler` / :func:`v2v.pipeline.generate`, the loops every
other generation uses; only the id maps of the predicted frames (one byte per pixel) are kept between them.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .media.resize import resize_ids
from .media.tensors import uint8_to_image
from .pipeline import GenerateError, generate, prepare_source
from .sampler import StreamingSampler
from .sources.labels import label_video


def is_predictor(model: torch.nn.Module) -> bool:
    """Whether ``model`` maps label maps to label maps (a stage-1 predictor).  A model file's training record
    decides (the trainer writes ``predict``); a network built in code, which has none, by its channels."""
    metadata = getattr(model, "file_metadata", None)
    if metadata is not None:
        return bool(json.loads(metadata.get("v2v.train") or "{}").get("predict"))
    cfg = model.cfg
    return bool(cfg.label_nc) and cfg.input_nc == cfg.label_nc and cfg.output_nc == cfg.label_nc


def check_pair(predictor: torch.nn.Module, renderer: torch.nn.Module, predictor_name: str = "the predictor",
               renderer_name: str = "the renderer") -> None:
    """Refuse, naming the files, a predictor that is not one or a renderer that takes other label maps (before any
    source is extracted)."""
    if not is_predictor(predictor):
        raise GenerateError(f"{predictor_name} is not a label-map predictor: choose a model trained with "
                            "data.predict: true (e.g. street_predict.safetensors) as the predictor")
    if predictor.cfg.label_nc != renderer.cfg.label_nc:
        raise GenerateError(f"the predictor makes {predictor.cfg.label_nc}-class maps but {renderer_name} takes "
                            f"{renderer.cfg.label_nc} classes: pair models trained on the same label maps")


def one_hot_map(ids: np.ndarray, label_nc: int) -> torch.Tensor:
    """[H, W] ids -> [label_nc, H, W] float one-hot (ids outside 0..label_nc-1 give all-zero pixels)."""
    ids_t = torch.from_numpy(np.asarray(ids, np.int64))
    valid = (ids_t >= 0) & (ids_t < label_nc)
    hot = torch.nn.functional.one_hot(ids_t.clamp(0, label_nc - 1), label_nc).permute(2, 0, 1).float()
    return hot * valid


def predict_label_maps(predictor: torch.nn.Module, observed: Sequence[np.ndarray], n_future: int, *,
                       device: str | torch.device = "cpu", precision: str = "fp32") -> Iterator[np.ndarray]:
    """The ``n_future`` id maps ``[H, W]`` (uint8) that follow ``observed`` (>= 1 map at the predictor's size).

    As in training, the source of step t is the map of frame t-1 and the history starts from the last L observed
    maps as real outputs; after that every prediction is the next step's source (its argmax) and, as its raw
    scores, the next step's past (as the trainer feeds them back)."""
    if not is_predictor(predictor):
        raise GenerateError("this model is not a label-map predictor (train one with data.predict: true)")
    if not observed:
        raise GenerateError("future prediction needs at least one observed label map")
    cfg = predictor.cfg
    k = min(cfg.n_past, len(observed))
    hot = [one_hot_map(ids, cfg.label_nc) for ids in observed[-(k + 1):]]
    sampler = StreamingSampler(predictor, device=device, precision=precision,
                               first_frame=torch.stack(hot[-k:]) * 2 - 1)
    for t in range(len(hot) - k, len(hot)):     # the observed maps as given outputs, each with its past as source
        sampler.step(hot[max(t - 1, 0)])
    last = hot[-1]
    for _ in range(n_future):
        ids = sampler.step(last)[0].argmax(0).to(torch.uint8).cpu().numpy()
        yield ids
        last = one_hot_map(ids, cfg.label_nc)


def render_future(renderer: torch.nn.Module, observed: Sequence[np.ndarray], predicted: Sequence[np.ndarray],
                  first_frames: np.ndarray | None = None, *, device: str | torch.device = "cpu",
                  precision: str = "fp32") -> Iterator[torch.Tensor]:
    """Frames ``[3, H, W]`` in [-1, 1] for the ``predicted`` id maps, rendered by a label -> video model after the
    last observed maps; ``first_frames`` (uint8 ``[k, H, W, 3]``, the real frames of the last observed maps)
    start its history, as the paper seeds the renderer with real frames."""
    cfg = renderer.cfg
    if not cfg.label_nc:
        raise GenerateError("the renderer must be a label-map model (labels -> video)")
    k = 0 if first_frames is None else min(cfg.n_past, len(first_frames), len(observed))
    ids = np.stack([*observed[len(observed) - k:], *predicted]).astype(np.int64)
    boundary = "labels" if cfg.input_nc == cfg.label_nc + 1 else None
    source = prepare_source(renderer, label_video(ids, label_nc=cfg.label_nc, instances=boundary))
    first = uint8_to_image(np.asarray(first_frames[-k:])) if k else None
    for g in generate(renderer, source, first_frame=first, device=device, precision=precision, shots=None):
        if g.index >= k:
            yield g.frame


def predict_future(predictor: torch.nn.Module, renderer: torch.nn.Module | None, observed: Sequence[np.ndarray],
                   n_future: int, first_frames: np.ndarray | None = None, *,
                   predictor_size: tuple[int, int] | None = None, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> tuple[list[np.ndarray], Iterator[torch.Tensor] | None]:
    """Both stages at the observed maps' size: the maps are resized (nearest) to ``predictor_size`` (the size the
    predictor learnt at; None: as given) for stage 1 and back for stage 2.  Returns the predicted id maps and,
    with a renderer, a lazy stream of the rendered frames."""
    size = observed[0].shape[:2]
    small = [resize_ids(m, predictor_size) for m in observed] if predictor_size else list(observed)
    predicted = [resize_ids(m, size) if predictor_size else m
                 for m in predict_label_maps(predictor, small, n_future, device=device, precision=precision)]
    frames = None
    if renderer is not None:
        frames = render_future(renderer, observed, predicted, first_frames, device=device, precision=precision)
    return predicted, frames
