"""Load on a real ComfyUI server: 20 prompts queued at once, half of them bad in different ways, one good
one interrupted mid-run.  Every good prompt finishes with the right video, every bad one reports its own
node's error (rejected by validation, or failed in its node), the interrupted one stops, and the server
answers /system_stats all the while and ends with an empty queue."""
from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path

import pytest
import torch

from test_workflows import GEN, _long_prompt, host, load_api, video_of  # noqa: F401  (host: the fixture)

ROOT = Path(__file__).resolve().parents[2]


class StatsPoller(threading.Thread):
    """GET /system_stats every 0.25 s until stopped; records each answer's status and latency."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.results, self.halt = client, [], threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                status, _ = self.client._request("GET", "/system_stats")
            except Exception as e:  # noqa: BLE001  (a refused or timed-out request is a failure to record)
                status = repr(e)
            self.results.append((status, time.monotonic() - t0))
            self.halt.wait(0.25)


def good(name: str, seed: int, frames: int) -> tuple[dict, int]:
    prompt = load_api(name)
    prompt[GEN]["inputs"].update(seed=seed, max_frames=frames, filename_prefix=f"vid2vid/load_{seed}")
    return prompt, frames


def model_folder(server) -> Path:
    return Path(server.run_dir) / "models" / "vid2vid"


def bad_cases(server) -> dict[str, tuple[dict, str, str]]:
    """name -> (prompt, node class that must report it, words its message must hold)."""
    folder = model_folder(server)
    from safetensors.torch import load_file, save_file

    sample = ROOT / "models" / "vid2vid" / "vid2vid_sample_street.safetensors"
    tensors = load_file(str(sample))
    from v2v.model.checkpoint import CHECKSUM_KEY, read_metadata

    meta = {k: v for k, v in read_metadata(sample).items() if k != CHECKSUM_KEY}
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(folder / "load_nan.safetensors"), metadata=meta)
    save_file({"model.diffusion.weight": torch.zeros(4, 4)}, str(folder / "load_foreign.safetensors"))
    torch.save({"w": torch.zeros(2)}, folder / "load_pickle.pth")
    data = sample.read_bytes()
    (folder / "load_truncated.safetensors").write_bytes(data[: 8 + struct.unpack("<Q", data[:8])[0] + 100])

    def street(**inputs) -> dict:
        prompt = load_api("vid2vid_labels_to_street")
        prompt[GEN]["inputs"].update(max_frames=3, **inputs)
        return prompt

    labels_out_of_range = street()
    labels_out_of_range["1"]["inputs"]["label_nc"] = 4
    missing_input = street()
    missing_input["1"]["inputs"]["path"] = "no_such_label_folder"
    wrong_source = load_api("vid2vid_labels_to_street")
    wrong_source[GEN]["inputs"].update(model_name="vid2vid_sample_face.safetensors", max_frames=3)
    return {
        "nan_weights": (street(model_name="load_nan.safetensors"), "Vid2VidGenerate", "NaN or inf weights"),
        "foreign_model": (street(model_name="load_foreign.safetensors"), "Vid2VidGenerate", "not a vid2vid generator"),
        "pickled_model": (street(model_name="load_pickle.pth"), "Vid2VidGenerate", "pickled PyTorch checkpoint"),
        "truncated_model": (street(model_name="load_truncated.safetensors"), "Vid2VidGenerate", "truncated"),
        "outside_folders": (street(model_name="../../load_outside.safetensors"), "Vid2VidGenerate",
                            "outside the vid2vid model folders"),
        "model_path_elsewhere": (street(model_path="/etc/passwd"), "Vid2VidGenerate",
                                 "outside the vid2vid model folders"),
        "wrong_source": (wrong_source, "Vid2VidGenerate", "but the connected source is label maps"),
        "past_the_end": (street(start_frame=1000), "Vid2VidGenerate", "start_frame is 1000"),
        "label_ids_out_of_range": (labels_out_of_range, "LabelVideoLoader", "label id"),
        "missing_input": (missing_input, "LabelVideoLoader", "no_such_label_folder"),
    }


def node_errors(body) -> dict:
    return (body or {}).get("node_errors") or {} if isinstance(body, dict) else {}


def test_twenty_prompts_at_once_half_bad_one_interrupted(host, comfy_server, comfy_host):  # noqa: F811
    if comfy_server.log_path is None:
        pytest.skip("needs the model folder of a server this test started")
    goods = [good("vid2vid_sketch_to_face", 500 + i, 3 + i % 3) for i in range(4)]
    goods += [good("vid2vid_labels_to_street", 600 + i, 2 + i % 3) for i in range(3)]
    goods += [good("vid2vid_pose_to_body", 700 + i, 3) for i in range(2)]
    long_prompt = _long_prompt(seed=4242)
    long_prompt[GEN]["inputs"]["filename_prefix"] = "vid2vid/load_interrupted"
    bads = bad_cases(comfy_server)

    order = [("good", i) for i in range(len(goods))] + [("bad", k) for k in bads] + [("long", None)]
    order = order[::2] + order[1::2]               # good and bad interleaved; the long one in the middle
    assert len(order) == 20
    poller = StatsPoller(comfy_host.ComfyClient(comfy_server.url, timeout=30))
    poller.start()
    queued, rejected = {}, {}
    try:
        with host.events(timeout=600) as events:
            for kind, key in order:                 # all queued before the first finishes
                prompt = goods[key][0] if kind == "good" else bads[key][0] if kind == "bad" else long_prompt
                try:
                    queued[(kind, key)] = host.queue_prompt(prompt)
                except comfy_host.PromptRejected as e:
                    rejected[(kind, key)] = e.body
            long_id = queued[("long", None)]
            for kind, data in events:              # interrupt the long one once it is generating
                if kind == "progress" and data.get("prompt_id", long_id) == long_id and data.get("max") == 100 \
                        and data.get("value", 0) >= 2:
                    host.interrupt()
                    break
        entries = {k: host.wait(pid, timeout=600) for k, pid in queued.items()}
    finally:
        poller.halt.set()
        poller.join(timeout=10)

    assert not [k for k in rejected if k[0] != "bad"], f"good prompts rejected: {rejected}"
    for i, (prompt, frames) in enumerate(goods):
        entry = entries[("good", i)]
        assert entry.completed, json.dumps(entry.error or entry.status)[:2000]
        assert len(video_of(host, entry)) == frames
    assert entries[("long", None)].interrupted and not entries[("long", None)].completed

    for key, (_, node_type, words) in bads.items():
        if ("bad", key) in rejected:               # refused when queued: the node's validation message
            errors = node_errors(rejected[("bad", key)])
            assert any(e.get("class_type") == node_type and words in json.dumps(e) for e in errors.values()), \
                (key, rejected[("bad", key)])
        else:
            entry = entries[("bad", key)]
            assert not entry.completed and entry.error is not None, (key, entry.status)
            assert entry.error["node_type"] == node_type and words in entry.error["exception_message"], \
                (key, entry.error["node_type"], entry.error["exception_message"])

    assert poller.results and all(status == 200 for status, _ in poller.results), poller.results[:20]
    print(f"/system_stats answered {len(poller.results)} times, slowest {max(s for _, s in poller.results):.2f} s; "
          f"refused at queue time: {sorted(k for _, k in rejected)}")
    assert host.queue() == {"queue_running": [], "queue_pending": []}
