"""The pack inside a real ComfyUI server: it loads, /object_info declares our nodes as the classes
do, prompts run over HTTP, and bad prompts leave a healthy server."""
from __future__ import annotations

import re

import pytest

import nodes as pack_nodes  # this checkout's nodes/ (tests/conftest.py puts the repo root first)

PACK_NODES = sorted(pack_nodes.NODE_CLASS_MAPPINGS)


def pack_tracebacks(log: str) -> list[str]:
    """The tracebacks in a server log that involve this pack (its folder or its packages), not the host's own
    (0.3.75 here lacks torchaudio, so its audio nodes print one at start-up)."""
    blocks, current = [], None
    for line in log.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            current = [line]
            blocks.append(current)
        elif current is not None:
            current.append(line)
            if line and not line[0].isspace():     # the exception line ends the block
                current = None
    mine = ("comfyui-vid2vid", "/v2v/", "vid2vid")
    return ["\n".join(b) for b in blocks if any(m in "\n".join(b) for m in mine)]


@pytest.mark.host_smoke
def test_pack_imports_without_failure(comfy_server):
    log = comfy_server.startup_log()
    assert comfy_server.import_failures() == [], log
    if comfy_server.log_path is not None:  # a server we started: its import table names the pack
        assert re.search(r"^\s*[0-9.]+ seconds: .*custom_nodes/comfyui-vid2vid\s*$", log, re.M), log
        assert pack_tracebacks(comfy_server.log_text()) == [], log


def test_the_log_check_sees_the_packs_own_tracebacks():
    host_only = "Traceback (most recent call last):\n  File \"/c/comfy_extras/nodes_audio.py\"\nImportError: torchaudio\n"
    ours = "Traceback (most recent call last):\n  File \"/c/custom_nodes/comfyui-vid2vid/nodes/x.py\"\nValueError: x\n"
    assert pack_tracebacks(host_only) == [] and len(pack_tracebacks(host_only + "ok\n" + ours)) == 1


@pytest.mark.host_smoke
def test_every_pack_node_is_served(comfy):
    info = comfy.object_info()
    missing = [name for name in PACK_NODES if name not in info]
    assert not missing, f"nodes declared by the pack but not served: {missing}"


def _declared_inputs(cls) -> dict[str, dict[str, object]]:
    spec = cls.INPUT_TYPES()
    return {section: {name: value[0] for name, value in spec.get(section, {}).items()}
            for section in ("required", "optional")}


def _comparable(kind):
    """Combo inputs are lists whose items may depend on the host's folders: compare as 'COMBO'."""
    return "COMBO" if isinstance(kind, (list, tuple)) else kind


@pytest.mark.host_smoke
@pytest.mark.parametrize("name", PACK_NODES)
def test_object_info_matches_the_node_class(comfy, name):
    """On the current host the pack registers its V3 twins: this compares them with the V1 classes."""
    cls = pack_nodes.NODE_CLASS_MAPPINGS[name]
    served = comfy.object_info(name)
    assert served, f"/object_info/{name} is empty"
    for section, inputs in _declared_inputs(cls).items():
        got = {k: _comparable(v[0]) for k, v in served["input"].get(section, {}).items()}
        assert got == {k: _comparable(v) for k, v in inputs.items()}, section
        declared = cls.INPUT_TYPES().get(section, {})
        for k, v in served["input"].get(section, {}).items():   # defaults, limits, tooltips: all carried over
            options = dict(declared[k][1]) if len(declared[k]) > 1 else {}
            got_options = v[1] if len(v) > 1 else {}
            assert {o: got_options.get(o) for o in options} == options, (section, k)
    assert served["output"] == list(cls.RETURN_TYPES)
    assert served["output_name"] == list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))
    assert served["output_node"] == bool(getattr(cls, "OUTPUT_NODE", False))
    assert served["category"] == getattr(cls, "CATEGORY", "sd")
    assert served["display_name"] == pack_nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)
    assert served["category"].startswith("vid2vid"), "our nodes live under the vid2vid menu"


def test_a_prompt_runs_and_its_image_is_served(comfy):
    """The host's execution path end to end (queue, run, /history, /view) on core nodes."""
    import cv2
    import numpy as np

    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 2, "color": 0xFF8000}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "v2v_host_check"}},
    }
    entry = comfy.run(prompt, timeout=120)
    assert entry.completed, entry.status
    files = entry.files("images")
    assert len(files) == 2
    image = cv2.imdecode(np.frombuffer(comfy.view(files[0]), np.uint8), cv2.IMREAD_COLOR)  # BGR
    assert image.shape == (32, 48, 3)
    assert image[5, 5].tolist() == [0x00, 0x80, 0xFF]


def test_a_rejected_prompt_leaves_the_server_healthy(comfy, comfy_host):
    with pytest.raises(comfy_host.PromptRejected) as err:
        comfy.queue_prompt({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}})
    assert err.value.status in (400, 500)
    with pytest.raises(comfy_host.PromptRejected) as err:  # no output node
        comfy.queue_prompt({"1": {"class_type": "EmptyImage",
                                  "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}})
    assert err.value.status == 400
    assert comfy.queue()["queue_pending"] == []
    test_a_prompt_runs_and_its_image_is_served(comfy)


def test_interrupt_when_idle_is_harmless(comfy):
    comfy.interrupt()
    test_a_prompt_runs_and_its_image_is_served(comfy)


def _defaults(cls, **overrides) -> dict:
    """Every required widget input at its declared default (a combo: its first choice)."""
    values = {}
    for name, spec in cls.INPUT_TYPES().get("required", {}).items():
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, (list, tuple)):
            values[name] = options.get("default", kind[0])
        elif "default" in options:
            values[name] = options["default"]
    values.update(overrides)
    return values


def test_a_pack_node_runs_in_a_prompt(comfy, comfy_server):
    """LoadImage -> SketchExtract (edges) -> SaveImage: the pack's code runs inside the host."""
    import cv2
    import numpy as np

    if comfy_server.input_dir is None:
        pytest.skip("needs a server this session started (its input directory)")
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[12:36, 16:48] = 255
    cv2.imwrite(str(comfy_server.input_dir / "v2v_rectangle.png"), frame)
    cls = pack_nodes.NODE_CLASS_MAPPINGS["SketchExtract"]
    preview = list(cls.RETURN_NAMES).index("preview")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "v2v_rectangle.png"}},
        "2": {"class_type": "SketchExtract", "inputs": {**_defaults(cls, mode="edges"), "images": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", preview], "filename_prefix": "v2v_sketch"}},
    }
    entry = comfy.run(prompt, timeout=300)
    assert entry.completed, entry.error or entry.status
    files = entry.files("images")
    assert len(files) == 1
    image = cv2.imdecode(np.frombuffer(comfy.view(files[0]), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape == (48, 64)
    assert image.min() != image.max(), "the edge preview of a rectangle is not constant"


def test_progress_events_stream_over_the_websocket(comfy):
    pytest.importorskip("websocket", reason="websocket-client is in the [test] extra")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0x102030}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    seen = []
    with comfy.events(timeout=120) as events:
        prompt_id = comfy.queue_prompt(prompt)
        for kind, data in events:
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            seen.append(kind)
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                break
    assert "execution_start" in seen and "executed" in seen, seen
    assert comfy.wait(prompt_id, timeout=30).completed


def test_a_new_model_file_is_listed_without_a_restart(comfy_server, comfy):
    if comfy_server.log_path is None:
        pytest.skip("needs the model folder of a server this test started")
    import shutil
    from pathlib import Path

    from nodes.models import PACK_MODELS

    added = Path(comfy_server.models) / "vid2vid" / "added_while_running.safetensors"
    shutil.copyfile(PACK_MODELS / "vid2vid_sample_face.safetensors", added)
    try:
        kind, spec = comfy.object_info("Vid2VidGenerate")["input"]["required"]["model_name"][:2]
        options = kind if isinstance(kind, list) else spec["options"]      # V1 list, or V3 ["COMBO", {options}]
        assert "added_while_running.safetensors" in options, options
    finally:
        added.unlink()
