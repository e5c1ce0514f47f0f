import cv2
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions are fastest single-threaded (and 2-core CI runners thrash otherwise)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sketch_folder(tmp_path):
    """Six 32x32 PNG renderings of a circle moving right: a prepared 'rgb' source for the tiny test models."""
    folder = tmp_path / "sketch"
    folder.mkdir()
    for i in range(6):
        image = np.zeros((32, 32, 3), np.uint8)
        cv2.circle(image, (8 + 2 * i, 16), 5, (255, 255, 255), 1)
        assert cv2.imwrite(str(folder / f"f{i}.png"), image)
    return folder


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """An empty vid2vid model folder (and output folder) the nodes use, with a cold model cache."""
    from nodes import models

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("V2V_MODELS_DIR", str(folder))
    monkeypatch.setenv("V2V_OUTPUT_DIR", str(tmp_path / "output"))
    models.clear_cache()
    yield folder
    models.clear_cache()
