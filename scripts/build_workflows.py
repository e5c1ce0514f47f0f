#!/usr/bin/env python3
"""Write the shared workflows in both formats from one description: ``workflows/<name>.json`` (the UI /
litegraph format that ComfyUI's web page loads and saves) and ``workflows/api/<name>.json`` (the API format
that ``POST /prompt`` and the tests run).

    python scripts/build_workflows.py           # rewrite all
    python scripts/build_workflows.py --check   # exit 1 when a file differs from what would be written

Widget order in the UI format follows each node's INPUT_TYPES (required, then optional) as the web UI builds
it; an INT input named ``seed`` carries one extra value, its "control after generate" mode (``fixed`` here,
so a re-queued workflow is reproducible).  The browser test checks the result: loading the UI file and
asking the page for its prompt (``app.graphToPrompt``) gives the API file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nodes as pack_nodes  # noqa: E402  (this checkout's node package)

OUT = REPO / "workflows"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# name -> (title, nodes); a node: (id, class, widget values, {input: (from id, from slot)}, position)
WORKFLOWS = {
    "vid2vid_labels_to_street": ("labels -> street (pseudo-label maps of a street video -> video)", [
        (1, "LabelVideoLoader", {"label_format": "ids", "label_nc": 9, "instance_boundary": False,
                                 "path": "vid2vid_street_labels", "person_mask": "none", "fps": 10.0}, {}, (40, 80)),
        (2, "Vid2VidGenerate", {"model_name": "vid2vid_sample_street.safetensors", "filename_prefix": "vid2vid/street"},
         {"source": (1, 0)}, (460, 80)),
    ]),
    "vid2vid_sketch_to_face": ("sketch -> face (edge sketch of a face video -> face video)", [
        (1, "SketchExtract", {"mode": "edges", "distance_transform": False, "path": "vid2vid_carphone_60f.mp4"},
         {}, (40, 80)),
        (2, "Vid2VidGenerate", {"model_name": "vid2vid_sample_face.safetensors", "filename_prefix": "vid2vid/face"},
         {"source": (1, 0)}, (460, 80)),
    ]),
    # the paper's multimodal synthesis: one label video, three seeds; only the people (class 8, each track its
    # own draw) are resampled, every other class keeps the model's mean style (the model learnt from one
    # static-camera clip, whose stuff classes have one look each: bench/NOTES.md)
    "vid2vid_style_street": ("styles: labels -> StyleSample x 3 seeds -> three street videos (only the people "
                             "change)", [
        (1, "LabelVideoLoader", {"label_format": "ids", "label_nc": 9, "instance_boundary": True,
                                 "path": "vid2vid_street_heldout", "instance_path": "vid2vid_street_heldout_instance",
                                 "person_mask": "none", "fps": 10.0}, {}, (40, 80)),
        *[(11 + k, "StyleSample", {"model_name": "street_style.safetensors", "seed": k + 1, "resample_classes": "8"},
           {"source": (1, 0)}, (460, 80 + 360 * k)) for k in range(3)],
        *[(node, "Vid2VidGenerate", {"model_name": "street_style.safetensors", "resize": "model",
                                     "filename_prefix": f"vid2vid/style_seed{k + 1}"},
           {"source": (1, 0), "style": (11 + k, 0)}, (880, 80 + 360 * k)) for k, node in enumerate((2, 21, 22))],
    ]),
    # the paper's future prediction: observe the first 40 held-out label maps, predict 10 more, render them
    "vid2vid_future_street": ("future: label maps -> FuturePredict (predict the next maps, render them)", [
        (1, "LabelVideoLoader", {"label_format": "ids", "label_nc": 9, "instance_boundary": False,
                                 "path": "vid2vid_street_heldout", "person_mask": "none", "max_frames": 40,
                                 "fps": 10.0}, {}, (40, 80)),
        (2, "FuturePredict", {"predictor_name": "street_predict.safetensors", "renderer_name": "street.safetensors",
                              "n_future": 10}, {"source": (1, 0)}, (460, 80)),
    ]),
    "vid2vid_pose_to_body": ("pose -> body (OpenPose keypoints -> people video)", [
        (1, "PoseExtract", {"path": "vid2vid_walk_pose", "fps": 10.0}, {}, (40, 80)),
        (2, "Vid2VidGenerate", {"model_name": "vid2vid_sample_pose.safetensors", "filename_prefix": "vid2vid/pose"},
         {"source": (1, 0)}, (460, 80)),
    ]),
}


def _inputs(cls) -> list[tuple[str, tuple]]:
    spec = cls.INPUT_TYPES()
    return list(spec.get("required", {}).items()) + list(spec.get("optional", {}).items())


def _is_widget(decl: tuple) -> bool:
    return isinstance(decl[0], (list, tuple)) or decl[0] in WIDGET_TYPES


def _default(decl: tuple):
    kind, opts = decl[0], (decl[1] if len(decl) > 1 else {})
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, (list, tuple)):
        return kind[0] if kind else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind]


def _widgets(cls, values: dict) -> dict:
    """Every widget input with its value (given, else the node's default), in INPUT_TYPES order."""
    names = {n for n, d in _inputs(cls) if _is_widget(d)}
    unknown = set(values) - names
    if unknown:
        raise SystemExit(f"{cls.__name__}: no widget inputs {sorted(unknown)}")
    return {n: values.get(n, _default(d)) for n, d in _inputs(cls) if _is_widget(d)}


def api_prompt(nodes: list) -> dict:
    prompt = {}
    for node_id, class_type, values, links, _ in nodes:
        cls = pack_nodes.NODE_CLASS_MAPPINGS[class_type]
        inputs = dict(_widgets(cls, values))
        for name, (src, slot) in links.items():
            inputs[name] = [str(src), slot]
        prompt[str(node_id)] = {"class_type": class_type, "inputs": inputs}
    return prompt


def ui_workflow(title: str, nodes: list) -> dict:
    links, ui_nodes = [], []
    out_links: dict[tuple[int, int], list[int]] = {}
    in_links: dict[tuple[int, str], int] = {}
    for node_id, _, _, node_links, _ in nodes:
        for name, (src, slot) in node_links.items():
            link_id = len(links) + 1
            src_cls = pack_nodes.NODE_CLASS_MAPPINGS[next(n[1] for n in nodes if n[0] == src)]
            links.append([link_id, src, slot, node_id, None, src_cls.RETURN_TYPES[slot]])
            out_links.setdefault((src, slot), []).append(link_id)
            in_links[(node_id, name)] = link_id
    for order, (node_id, class_type, values, node_links, pos) in enumerate(nodes):
        cls = pack_nodes.NODE_CLASS_MAPPINGS[class_type]
        inputs = []
        for name, decl in _inputs(cls):
            if _is_widget(decl):
                continue
            link = in_links.get((node_id, name))
            inputs.append({"name": name, "type": decl[0], "link": link})
            if link is not None:
                links[link - 1][4] = len(inputs) - 1
        widgets = []
        for name, value in _widgets(cls, values).items():
            widgets.append(value)
            if name == "seed" and dict(_inputs(cls))[name][0] == "INT":
                widgets.append("fixed")
        outputs = [{"name": n, "type": t, "links": out_links.get((node_id, i), []), "slot_index": i}
                   for i, (n, t) in enumerate(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))]
        ui_nodes.append({"id": node_id, "type": class_type, "pos": list(pos), "size": [380, 330], "flags": {},
                         "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                         "properties": {"Node name for S&R": class_type}, "widgets_values": widgets})
    return {"last_node_id": max(n[0] for n in nodes), "last_link_id": len(links), "nodes": ui_nodes,
            "links": links, "groups": [], "config": {}, "extra": {"title": title}, "version": 0.4}


def render() -> dict[Path, str]:
    files = {}
    for name, (title, nodes) in WORKFLOWS.items():
        files[OUT / f"{name}.json"] = json.dumps(ui_workflow(title, nodes), indent=2) + "\n"
        files[OUT / "api" / f"{name}.json"] = json.dumps(api_prompt(nodes), indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
    if stale:
        print("out of date (run python scripts/build_workflows.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
