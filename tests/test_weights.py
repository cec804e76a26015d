"""The weights registry through `savg weights import|list` and weights specs: official files are converted into a
temporary ``SAVG_HOME``, registry names resolve to the cache, and loading never runs pickled code."""

from __future__ import annotations

import builtins
import json
import re
import zipfile

import numpy as np
import pytest
import torch
from test_spatial_eval import one_torch_thread  # noqa: F401  (autouse: one torch thread, restored afterwards)

from savg_hub import weights as registry
from savg_hub.cli.main import main
from savg_hub.convert.seld import official_seld_key_to_savg
from savg_hub.evaluation.spatial_eval import load_person_detector, load_seld
from savg_hub.models.stereo_seld import StereoSELDModel

SELD_FILE = "params_swa_20240912162834_0040000.pth"


def official_seld_key(name: str) -> str:
    """Official ``CNN_MHSA_FC`` key of a :class:`StereoSELDModel` state-dict name (inverse of the converter's map)."""
    if match := re.fullmatch(r"cross_stitch\.(\d+)\.weight", name):
        return f"stitch{int(match.group(1)) + 1}"
    if match := re.fullmatch(r"(sed|doa)_blocks\.(\d+)\.(conv1|norm1|conv2|norm2)\.(\w+)", name):
        branch, block, layer, leaf = match.groups()
        index = {"conv1": 0, "norm1": 1, "conv2": 3, "norm2": 4}[layer]
        return f"{branch}_conv_block{int(block) + 1}.0.double_conv.{index}.{leaf}"
    if match := re.fullmatch(r"(sed|doa)_transformer\.(layers\..+)", name):
        return f"{match.group(1)}_trans_track1.{match.group(2)}"
    if match := re.fullmatch(r"(sed|doa)_head\.(weight|bias)", name):
        return f"fc_{match.group(1)}_track1.{match.group(2)}"
    raise AssertionError(f"no official name for {name}")


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    """An official-format SELD training checkpoint (random weights) whose scheduler state carries a code payload."""
    root = tmp_path_factory.mktemp("release")
    marker = root / "executed"

    class Payload:  # what an untrusted pickle could do on load
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w').close()",))

    torch.manual_seed(0)
    model = StereoSELDModel()  # the official architecture (the converter's default config)
    state = {}
    for name, value in model.state_dict().items():
        key = official_seld_key(name)
        assert official_seld_key_to_savg(key) == name
        state[key] = value
    checkpoint = {"model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []},
                  "scheduler_state_dict": {"base_values": [np.float64(1e-3)], "payload": Payload()}}
    path = root / "SAVGBench_PretrainedModels" / "stereo_seld" / SELD_FILE
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    expected = model.cross_stitch[1].weight.detach().clone()
    return path, marker, expected


@pytest.fixture
def savg_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SAVG_HOME", str(home))
    return home


def test_import_folder_converts_into_savg_home_without_running_code(official_checkpoint, savg_home, capsys):
    path, marker, expected = official_checkpoint
    (path.parent / "notes.txt").write_text("not a checkpoint\n")
    assert main(["weights", "import", str(path.parents[1]), "--no-progress"]) == 0
    assert not marker.exists()
    folder = savg_home / "weights" / "stereo-seld-savgbench"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert "stereo-seld-savgbench" in capsys.readouterr().out
    provenance = json.loads((folder / "savg_weights.json").read_text())
    assert provenance["source_file"] == SELD_FILE and len(provenance["source_sha256"]) == 64
    loaded = StereoSELDModel.from_pretrained(folder)
    torch.testing.assert_close(loaded.cross_stitch[1].weight, expected, rtol=0, atol=0)
    # the registry name now resolves to the cache, and is the default (official) SELD
    assert registry.resolve_weights("stereo-seld-savgbench", "stereo-seld") == folder
    assert registry.default_weights("stereo-seld") == ("stereo-seld-savgbench", True)
    seld, record = load_seld(batch_size=8)
    assert record.source == "official" and not record.stand_in and record.path == str(folder)
    assert record.sha256 == registry.file_sha256(folder)
    assert main(["weights", "list", "--kind", "stereo-seld"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"stereo-seld-savgbench\s+stereo-seld\s+cache", listing)


def test_import_zip_and_official_file_as_a_spec(official_checkpoint, savg_home, tmp_path):
    path, marker, expected = official_checkpoint
    archive = tmp_path / "SAVGBench_PretrainedModels_V1.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(path, f"SAVGBench_PretrainedModels/stereo_seld/{SELD_FILE}")
        handle.writestr("SAVGBench_PretrainedModels/README.txt", "hello")
    converted = registry.import_official(archive, progress=False)
    assert [entry.name for entry, _ in converted] == ["stereo-seld-savgbench"]
    assert not marker.exists()
    # an official file named directly as --weights converts once into the cache, keyed by its sha256
    first = registry.resolve_weights(path, "stereo-seld")
    assert first.parent == savg_home / "weights" / "by-sha256" and (first / "config.json").is_file()
    stamp = (first / "config.json").stat().st_mtime_ns
    assert registry.resolve_weights(path, "stereo-seld") == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    _, record = load_seld(path)
    assert record.source == "official" and record.name == "stereo-seld-savgbench"
    assert not marker.exists()


def test_weights_errors_are_clear(savg_home, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["weights", "import", str(empty), "--no-progress"]) == 2
    assert "no official checkpoint found" in capsys.readouterr().err
    with pytest.raises(registry.WeightsError, match="stereo-seld entries"):
        registry.resolve_weights("no-such-weights", "stereo-seld")
    with pytest.raises(registry.WeightsError, match="without config.json"):
        registry.resolve_weights(empty, "stereo-seld")
    with pytest.raises(registry.WeightsError, match="holds yolox-tiny weights"):
        registry.resolve_weights("yolox-tiny-coco", "stereo-seld")
    with pytest.raises(ValueError, match="unknown detector"):
        load_person_detector("faster-rcnn")
    with pytest.raises(ValueError, match="given twice"):
        load_person_detector("ultralytics:model.pt", "other.pt")


def test_embedded_default_weights_are_flagged_as_stand_ins(savg_home, tmp_path, monkeypatch, capsys):
    from test_spatial_eval import one_sided_clip, tiny_seld_model, tiny_yolox

    from savg_hub.media import write_clip

    assets = tmp_path / "assets"
    tiny_seld_model(0).save_pretrained(assets / "tiny-seld-embedded")
    monkeypatch.setattr(registry, "ASSETS", assets)
    monkeypatch.setitem(registry.REGISTRY, "tiny-seld-embedded", registry.WeightsEntry(
        name="tiny-seld-embedded", kind="stereo-seld", description="test stand-in",
        model_class="savg_hub.models.stereo_seld:StereoSELDModel", embedded="tiny-seld-embedded"))
    # offline, nothing imported: the default SELD is the embedded stand-in
    assert registry.default_weights("stereo-seld") == ("tiny-seld-embedded", False)
    _, record = load_seld()
    assert record.source == "embedded" and record.stand_in and record.sha256 == registry.file_sha256(
        assets / "tiny-seld-embedded")
    write_clip(tmp_path / "clips" / "a.mp4", one_sided_clip())
    tiny_yolox().save_pretrained(tmp_path / "yolox")
    assert main(["evaluate", str(tmp_path / "clips"), "--detector", "yolox-tiny", "--detector-weights",
                 str(tmp_path / "yolox"), "--out", str(tmp_path / "out"), "--no-calibration", "--no-progress"]) == 0
    assert "embedded stand-in" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["stand_in_weights"] is True and "stand-in" in results["warnings"][0]
    assert [w["stand_in"] for w in results["weights"]] == [True, False]
