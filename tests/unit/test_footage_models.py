"""scripts/footage_models.py: every variant's command trains what its name says (later --set values win)."""
from pathlib import Path

import pytest

from _scripts import load_script
from train.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recipe():
    return load_script("footage_models")


def config_of(cmd: list[str]):
    config = cmd[cmd.index("--config") + 1]
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    return load_config(REPO / config, sets)


@pytest.mark.parametrize("name", ["street", "face", "body", "faces", "streets"])
def test_tasks_use_the_recipe(recipe, name, tmp_path):
    cfg = config_of(recipe.train_command(name, tmp_path / name))
    assert cfg.preset == "small" and cfg.model["ngf"] == 24 and cfg.generated_start == 0.5
    assert cfg.model.get("use_flow", True) and cfg.data["root"] == f".cache/datasets/{name}"


def test_each_variant_flips_exactly_its_switch(recipe, tmp_path):
    expected = {"perframe": ("model", "use_flow", False), "nofg": ("model", "foreground", False),
                "nodv": ("disc", "n_temporal_scales", 0), "realstart": (None, "generated_start", 0),
                "maskreg_genonly": (None, "mask_loss_always", False), "nomaskreg": ("loss", "mask", 0),
                "fgpaper": ("model", "fg_blend", "paper"),
                "fast": [(None, "preset", "fast"), ("model", "ngf", 8)],        # the preset's own width
                "style": [("model", "style_nc", 3), ("data", "use_instance", True)],   # E needs instance maps
                "predict": [("data", "predict", True), ("loss", "label_ce", 10), ("model", "foreground", False),
                            (None, "generated_start", 0), ("data", "max_stride", 1)],
                "scratch": (None, "init_from", None)}
    from_scratch = (None, "init_from", None)   # streets variants start from scratch (the recipe fine-tunes)
    assert recipe.VARIANTS
    for name, (dataset, _) in recipe.VARIANTS.items():
        base = config_of(recipe.train_command(dataset, tmp_path / dataset)).to_dict()
        variant = config_of(recipe.train_command(name, tmp_path / name)).to_dict()
        switches = expected[name.split("_", 1)[1]]
        switches = list(switches) if isinstance(switches, list) else [switches]
        if dataset == "streets" and from_scratch not in switches:
            switches.append(from_scratch)
        for c in (base, variant):
            c["data"].pop("root"), c.pop("out_dir", None)
        for section, key, value in switches:
            get = (lambda c: c[key]) if section is None else (lambda c: c[section].get(key))
            assert get(variant) == value and get(base) != value, name
            for c in (base, variant):
                (c if section is None else c[section]).pop(key, None)
        assert base == variant, f"{name} differs from {dataset} in more than its switch"


def test_budget_and_extra_sets_come_last(recipe, tmp_path):
    cmd = recipe.train_command("street_perframe", tmp_path / "s", steps=300, sets=["data.load_size=[96,128]"])
    cfg = config_of(cmd)
    assert cfg.max_steps == 300 and cfg.decay_start == 300 and cfg.double_every == 150
    assert cfg.data["load_size"] == [96, 128] and cmd[-2:] == ["--out", str(tmp_path / "s")]


def test_general_datasets_hold_out_whole_clips_of_other_people(recipe, tmp_path):
    """Held-out clips are never trained on, every clip is a fetchable item with a licence, and the model
    trains with its task's recipe on its own dataset."""
    fetcher = load_script("fetch_sample_data")
    for name, general in recipe.GENERAL.items():
        train = {item for item, _ in general["train"]}
        val = {item for item, _ in general["val"]}
        assert train and val and not train & val
        for item in train | val:
            assert item in fetcher.ITEMS or item in fetcher.FOOTAGE_ITEMS, item
            if item in fetcher.FOOTAGE:
                package = fetcher.PACKAGES[fetcher.FOOTAGE[item][1]]
                assert "==" in package.spec or "@" in package.spec      # pinned
                assert package.license_member and package.note
        cfg = config_of(recipe.train_command(name, tmp_path / name))
        assert cfg.data["root"] == f".cache/datasets/{name}" and cfg.preset == "small"
    bodies = config_of(recipe.train_command("bodies", tmp_path / "bodies"))    # clips keep their own sizes
    assert bodies.data["load_size"] is None and bodies.data["crop_size"] == [160, 120]
    assert fetcher.expand(["faces", "face_franck"]) == fetcher.GROUPS["faces"]
    assert set(fetcher.GROUPS["footage"]) == set(fetcher.FOOTAGE)
