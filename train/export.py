"""The model file a training run writes for the nodes, sampler and CLI: the generator with its config, the
training record, the source recipe its dataset was made with (so generation makes the same source from any
video) and, with a style encoder, E itself (for styles from a reference image) and at the end of the run the
per-class style mixtures."""
from __future__ import annotations

import json

from train.data import DatasetError, read_dataset_json
from v2v.model.checkpoint import save_generator
from v2v.model.style import fit_style_gmm


def source_metadata(root, native: tuple[int, int], size: tuple[int, int], boundary: bool = False) -> str | None:
    """The ``v2v.source`` metadata of a model trained on the dataset at ``root``: the recipe its ``dataset.json``
    records, with the extraction scale (the dataset's frame height over the height the model learnt at) and,
    for label maps, whether the model takes the instance-boundary channel (``use_instance``), so generation
    makes the same source from any video; None when the dataset records no recipe."""
    recipe = read_dataset_json(root).get("source_recipe")
    if not recipe:
        return None
    params = dict(recipe.get("params") or {})
    if recipe.get("extractor") == "pseudo_labels":
        params["instances"] = bool(boundary)
    elif recipe.get("extractor") == "label_maps":
        params["boundary"] = bool(boundary)
    return json.dumps({**recipe, "params": params, "extract_scale": round(native[0] / size[0], 6)}, sort_keys=True)


def record_source_recipe(model_path, root) -> str:
    """Write the recipe of the dataset at ``root`` into a model file trained on it before recipes existed (its
    weights and config untouched): the metadata export() writes today.  Returns it."""
    from train.data import list_sequences
    from v2v.media.video_io import read_frames
    from v2v.model.checkpoint import read_config, training_frame_size, update_metadata

    first = read_frames(list_sequences(root, "train")[0] / "target")
    native = (first.height, first.width)
    cfg = read_config(model_path)
    recipe = source_metadata(root, native, training_frame_size(model_path) or native,
                             boundary=bool(cfg.label_nc) and cfg.input_nc == cfg.label_nc + 1)
    if recipe is None:
        raise DatasetError(f"{root}/dataset.json records no source recipe: prepare it with this version")
    update_metadata(model_path, {"v2v.source": recipe})
    return recipe


def recorded_frame_size(load_size, sequences) -> list[int] | None:
    """The training frame size a model file records, [H, W]: ``load_size``, or the clips' own size when they
    share one; None when they kept several sizes of their own (no one size says the scale learnt, so
    ``--resize model`` asks for an explicit size instead of scaling to the first clip's)."""
    if load_size:
        return list(load_size)
    sizes = {tuple(seq.size) for seq in sequences}
    return list(sizes.pop()) if len(sizes) == 1 else None


def export(G, E, out_dir, cfg, gcfg, dcfg, state, accelerator, train_ds, *, final: bool,
           fit_style: bool | None = None) -> None:
    """The nodes' safetensors (generator + config + training metadata); at the end (``final``, or a stop:
    ``fit_style``) also the style GMM."""
    native = train_ds.sequences[0].size            # (H, W) of the dataset's frames
    size = dcfg.load_size or native                # the scale the generator learnt (crops are cut from it)
    extra = {"v2v.train": json.dumps({"step": state.step, "task": cfg.task, "source_kind": dcfg.source_kind,
                                      "preset": cfg.preset, "finished": final,
                                      "frame_size": recorded_frame_size(dcfg.load_size, train_ds.sequences),
                                      "predict": dcfg.predict})}
    recipe = source_metadata(dcfg.root, native, size, boundary=dcfg.use_instance)
    if recipe:
        extra["v2v.source"] = recipe
    if (final if fit_style is None else fit_style) and E is not None and accelerator.is_main_process:
        gmm = fit_style_gmm(accelerator.unwrap_model(E), train_ds, dcfg.label_nc, cfg.style_gmm_components,
                            accelerator.device)
        extra["v2v.style_gmm"] = json.dumps(gmm)
        accelerator.print(f"fitted style Gaussian mixtures for classes {sorted(gmm, key=int)}")
    if accelerator.is_main_process:
        save_generator(accelerator.unwrap_model(G), out_dir / "model.safetensors", extra_metadata=extra,
                       style_encoder=None if E is None else accelerator.unwrap_model(E))
    accelerator.wait_for_everyone()


def add_style_encoder(model_path, state_dir) -> int:
    """Put the style encoder E of a training state (``<run>/checkpoints/state-N``) into the style model exported
    from it, for model files written before they carried E.  The state's generator must be the file's, weight
    for weight (the state of the step the file was exported at); the file's other metadata is kept.  Returns
    E's parameter count."""
    from pathlib import Path

    from safetensors.torch import load_file

    from v2v.model.checkpoint import RESERVED_KEYS, load_generator, read_metadata, weights_checksum
    from v2v.model.style import StyleEncoder

    model_path, state_dir = Path(model_path), Path(state_dir)
    record = json.loads((state_dir / "trainer.json").read_text())
    encoder_record = (record.get("networks") or {}).get("style_encoder")
    if not encoder_record:
        raise DatasetError(f"{state_dir}: this training state has no style encoder (model.style_nc 0)")
    model = load_generator(model_path)
    states = [load_file(str(f)) for f in sorted(state_dir.glob("model*.safetensors"))]
    generator = weights_checksum(model.state_dict())
    if not any(weights_checksum(s) == generator for s in states):
        step = json.loads(read_metadata(model_path).get("v2v.train", "{}")).get("step")
        raise DatasetError(f"{state_dir} does not hold the generator of {model_path.name}: use the state of the "
                           f"step it was exported at ({step if step is not None else 'its record does not say'})")
    encoder = StyleEncoder(model.cfg.style_nc, ngf=int(encoder_record["ngf"]))
    expected = set(encoder.state_dict())
    found = [s for s in states if set(s) == expected]
    if len(found) != 1:
        raise DatasetError(f"{state_dir}: found {len(found)} weight files shaped like the style encoder, expected 1")
    encoder.load_state_dict(found[0], strict=True)
    kept = {k: v for k, v in read_metadata(model_path).items() if k not in RESERVED_KEYS}
    save_generator(model, model_path, extra_metadata=kept, style_encoder=encoder)
    return sum(p.numel() for p in encoder.parameters())
