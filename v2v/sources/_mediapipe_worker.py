"""mediapipe 0.10.21 calls, kept free of torch and of this package's other modules.

mediapipe pins numpy<2, so it usually lives in its own virtual environment.  This file is then
run there as a script: ``python _mediapipe_worker.py TASK IN.npz OUT.npz`` (``IN.npz`` holds
``img_0 .. img_{K-1}``, uint8 RGB).  When mediapipe imports in the calling interpreter,
:func:`run` is called directly instead.

Tasks:
* ``pose``: one person per image (BlazePose full model): ``landmarks [K, 33, 4]`` (x, y in
  [0, 1] of that image, z, visibility), NaN rows for images without a person.
* ``selfie``: person segmentation: ``mask_i [H, W]`` float32 in [0, 1] per image.
"""
from __future__ import annotations

import sys

import numpy as np


def run(task: str, images: list, **kw) -> dict:
    import mediapipe as mp  # noqa: PLC0415 (optional extra)

    if task == "pose":
        out = np.full((len(images), 33, 4), np.nan, dtype=np.float32)
        with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=int(kw.get("model_complexity", 1)),
                                    enable_segmentation=False,
                                    min_detection_confidence=float(kw.get("min_detection_confidence", 0.5))) as pose:
            for i, img in enumerate(images):
                res = pose.process(np.ascontiguousarray(img))
                if res.pose_landmarks is not None:
                    out[i] = [(p.x, p.y, p.z, p.visibility) for p in res.pose_landmarks.landmark]
        return {"landmarks": out}
    if task == "selfie":
        res = {}
        with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=int(kw.get("model_selection", 1))) as seg:
            for i, img in enumerate(images):
                r = seg.process(np.ascontiguousarray(img))
                res[f"mask_{i}"] = np.asarray(r.segmentation_mask, dtype=np.float32)
        return res
    raise ValueError(f"unknown mediapipe task {task!r}")


def main(argv: list[str]) -> int:
    task, src, dst = argv[1], argv[2], argv[3]
    with np.load(src, allow_pickle=False) as data:
        n = int(data["n"])
        images = [data[f"img_{i}"] for i in range(n)]
        kw = {k[3:]: data[k].item() for k in data.files if k.startswith("kw_")}
    np.savez(dst, **run(task, images, **kw))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
