"""The weights registry: one entry per pretrained component, and how to get a loadable folder for it.

Every entry names the Hub repo (and revision) its converted weights are published under, the official release
file it is converted from (with the converter), the licence, and, for the small models trained by this project on
the synthetic set, the embedded copy shipped inside the package.

A *weights spec* (what ``--weights`` accepts) is one of:

* a converted folder (``config.json`` + safetensors, as ``save_pretrained`` writes);
* an official checkpoint file (``.pth``/``.pt``), converted on the fly into the local cache (keyed by its sha256);
* a registry name (``savg weights list``), looked up in the local cache (filled by ``savg weights import``), then
  in the package's embedded assets, then on the Hub (only when online).

Official checkpoints are read with ``torch.load(weights_only=True)`` by the converters: no pickled code runs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from savg_hub.utils.files import atomic_dir, atomic_write_text, savg_home, sha256_file

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets" / "weights"


class WeightsError(ValueError):
    """A weights spec cannot be resolved or a checkpoint cannot be converted."""


@dataclass(frozen=True)
class WeightsEntry:
    """A pretrained component.

    Attributes:
        name: registry name (``--weights NAME``).
        kind: what it is: ``stereo-seld``, ``yolox-tiny``, ``ultralytics``, ``i3d``, ``audioclip``,
            ``mm-diffusion``, ``sr-unet``.
        description: one line.
        model_class: ``"module:Class"`` whose ``from_pretrained`` loads the converted folder.
        converter: ``"module:function"`` converting an official file to a folder (``f(path, out_dir) -> Path``).
        official_filename: the file's name in its official release.
        official_source: where that file is published.
        sha256_prefix: known prefix of the official file's sha256 (OpenMMLab names carry 8 hex digits), if any.
        hub_repo: Hub repo id of the converted weights.
        hub_revision: pinned revision of ``hub_repo``.
        hub_subfolder: folder of the model inside ``hub_repo`` (the diffusion models' repos are pipeline repos:
            ``unet/``), also looked up in a local pipeline folder given as the spec.
        embedded: folder (or file, for Ultralytics) under ``savg_hub/assets/weights`` shipped with the package.
        licence: licence of the weights.
    """

    name: str
    kind: str
    description: str
    model_class: str
    converter: str | None = None
    official_filename: str | None = None
    official_source: str | None = None
    sha256_prefix: str | None = None
    hub_repo: str | None = None
    hub_revision: str = "main"
    hub_subfolder: str | None = None
    embedded: str | None = None
    licence: str = "unknown"


_SAVGBENCH_ZIP = "SAVGBench_PretrainedModels_V1.zip (Google Drive link in the SAVGBench README)"

REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        WeightsEntry(
            name="stereo-seld-savgbench",
            kind="stereo-seld",
            description="Official SAVGBench stereo SELD (CNN-MHSA-FC, 17.8M params), run 20240912162834, SWA 40k",
            model_class="savg_hub.models.stereo_seld:StereoSELDModel",
            converter="savg_hub.convert.seld:convert_seld_checkpoint",
            official_filename="params_swa_20240912162834_0040000.pth",
            official_source=_SAVGBENCH_ZIP,
            hub_repo="savg-hub/savgbench-stereo-seld",
            licence="see the SAVGBench repository (SonyResearch/SAVGBench)",
        ),
        WeightsEntry(
            name="yolox-tiny-coco",
            kind="yolox-tiny",
            description="mmdetection YOLOX-tiny, COCO 300 epochs (the official Spatial AV-Align person detector)",
            model_class="savg_hub.models.yolox:YOLOXModel",
            converter="savg_hub.convert.yolox:convert_yolox_checkpoint",
            official_filename="yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth",
            official_source="OpenMMLab model zoo (mmdetection v2.0 yolox) and " + _SAVGBENCH_ZIP,
            sha256_prefix="b4047906",
            hub_repo="savg-hub/yolox-tiny-coco",
            licence="Apache-2.0 (mmdetection model zoo)",
        ),
        WeightsEntry(
            name="i3d-kinetics400",
            kind="i3d",
            description="Inception-I3D on Kinetics-400 (TF-Hub conversion used by FVD)",
            model_class="savg_hub.models.i3d:InceptionI3DModel",
            converter="savg_hub.convert.i3d:convert_i3d_checkpoint",
            official_filename="i3d_pretrained_400.pt",
            official_source="github.com/songweige/TATS tats/fvd/i3d_pretrained_400.pt (fetched by the official code)",
            hub_repo="savg-hub/i3d-kinetics400",
            licence="Apache-2.0 (DeepMind Kinetics-i3d)",
        ),
        WeightsEntry(
            name="audioclip-full",
            kind="audioclip",
            description="AudioCLIP ESResNeXt-FBSP audio branch (AudioCLIP-Full-Training)",
            model_class="savg_hub.models.audioclip:AudioCLIPAudioModel",
            converter="savg_hub.convert.audioclip:convert_audioclip_checkpoint",
            official_filename="AudioCLIP-Full-Training.pt",
            official_source="github.com/AndreyGuzhov/AudioCLIP release v0.1",
            hub_repo="savg-hub/audioclip-audio",
            licence="MIT (AudioCLIP)",
        ),
        WeightsEntry(
            name="stereo-mm-diffusion-savgbench",
            kind="mm-diffusion",
            description="Official Stereo MM-Diffusion joint U-Net (model330011.pt, raw weights)",
            model_class="savg_hub.models.mm_diffusion_unet:CoupledUNetModel",
            converter="savg_hub.convert.mm_diffusion:convert_mm_diffusion_checkpoint",
            official_filename="model330011.pt",
            official_source=_SAVGBENCH_ZIP,
            hub_repo="savg-hub/savgbench-stereo-mm-diffusion",
            hub_subfolder="unet",
            licence="see the SAVGBench repository (SonyResearch/SAVGBench)",
        ),
        WeightsEntry(
            name="sr-savgbench",
            kind="sr-unet",
            description="Official 64->256 super-resolution U-Net (model_SR_mmdiff_120000.pt)",
            model_class="savg_hub.models.sr_unet:SuperResUNetModel",
            converter="savg_hub.convert.sr_unet:convert_sr_unet_checkpoint",
            official_filename="model_SR_mmdiff_120000.pt",
            official_source=_SAVGBENCH_ZIP,
            hub_repo="savg-hub/savgbench-sr-64-256",
            hub_subfolder="unet",
            licence="see the SAVGBench repository (SonyResearch/SAVGBench)",
        ),
        WeightsEntry(
            name="stereo-mm-diffusion-synthetic",
            kind="mm-diffusion",
            description="Embedded small Stereo MM-Diffusion (20x32x32 video + 2x80000 audio), base stage of the "
                        "embedded savgbench-joint-synthetic pipeline (see model_cards/savgbench-joint-synthetic)",
            model_class="savg_hub.models.mm_diffusion_unet:CoupledUNetModel",
            embedded="savgbench-joint-synthetic/unet",
            licence="Apache-2.0",
        ),
        WeightsEntry(
            name="sr-synthetic",
            kind="sr-unet",
            description="Embedded small 32->256 SR U-Net, SR stage of the embedded savgbench-joint-synthetic "
                        "pipeline",
            model_class="savg_hub.models.sr_unet:SuperResUNetModel",
            embedded="savgbench-joint-synthetic/sr_unet",
            licence="Apache-2.0",
        ),
        WeightsEntry(
            name="stereo-seld-synthetic",
            kind="stereo-seld",
            description="Embedded stereo SELD: small CNN-MHSA-FC trained by training/train_seld.py on a synthetic "
                        "SVGSA24 set (not the official evaluator; see model_cards/stereo-seld-synthetic)",
            model_class="savg_hub.models.stereo_seld:StereoSELDModel",
            embedded="stereo-seld-synthetic",
            licence="Apache-2.0",
        ),
        WeightsEntry(
            name="yolo-person-synthetic",
            kind="ultralytics",
            description="Embedded person detector: small Ultralytics YOLO trained from scratch on synthetic SVGSA24 "
                        "frames (not the official protocol; see model_cards/yolo-person-synthetic)",
            model_class="savg_hub.evaluation.detectors:UltralyticsDetector",
            embedded="yolo-person-synthetic/yolo-person-synthetic.pt",
            licence="AGPL-3.0 (trained with Ultralytics; Ultralytics models are AGPL-3.0)",
        ),
    )
}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Add (or replace) a registry entry; returns it."""
    REGISTRY[entry.name] = entry
    return entry


def _import(dotted: str):
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def cache_dir() -> Path:
    """Where converted weights live: ``$SAVG_HOME/weights``."""
    return savg_home() / "weights"


def entries(kind: str | None = None) -> list[WeightsEntry]:
    """Registry entries, optionally of one kind."""
    return [e for e in REGISTRY.values() if kind is None or e.kind == kind]


def entry_for_file(path: str | os.PathLike) -> WeightsEntry | None:
    """The registry entry whose official file name matches ``path``'s name."""
    name = Path(path).name
    for entry in REGISTRY.values():
        if entry.official_filename == name:
            return entry
    return None


def _write_provenance(folder: Path, entry: WeightsEntry | None, source: Path, digest: str) -> None:
    from savg_hub import __version__

    record = {"entry": asdict(entry) if entry else None, "source_file": source.name, "source_sha256": digest,
              "savg_hub_version": __version__}
    atomic_write_text(folder / "savg_weights.json", json.dumps(record, indent=2) + "\n")


def convert_official(path: str | os.PathLike, entry: WeightsEntry, out_dir: str | os.PathLike | None = None,
                     *, digest: str | None = None) -> Path:
    """Convert an official checkpoint of ``entry`` into ``out_dir`` (default: the cache folder of ``entry``).

    The folder is written next to its destination and renamed into place, so a failed conversion leaves nothing.
    """
    path = Path(path)
    if entry.converter is None:
        raise WeightsError(f"{entry.name} has no converter from an official file")
    digest = digest or sha256_file(path)
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise WeightsError(
            f"{path.name}: sha256 {digest[:12]}... does not start with {entry.sha256_prefix} as its official name says"
        )
    out = Path(out_dir) if out_dir is not None else cache_dir() / entry.name
    with atomic_dir(out) as work:
        _import(entry.converter)(path, work)
        _write_provenance(work, entry, path, digest)
    return out


def import_official(source: str | os.PathLike, *, progress: bool = True) -> list[tuple[WeightsEntry, Path]]:
    """Convert every official checkpoint found in a zip (e.g. ``SAVGBench_PretrainedModels_V1.zip``) or folder.

    Files are matched to registry entries by their official names; each is converted into the local cache.

    Returns:
        ``[(entry, converted folder)]`` for every checkpoint found (empty when none matched).
    """
    from tqdm.auto import tqdm

    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    converted = []
    with tempfile.TemporaryDirectory(prefix="savg-weights-") as tmp:
        if source.is_file() and zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                members = [m for m in archive.infolist() if not m.is_dir() and entry_for_file(m.filename)]
                files = []
                for member in members:
                    target = Path(tmp) / Path(member.filename).name
                    with archive.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    files.append(target)
        elif source.is_dir():
            files = sorted(p for p in source.rglob("*") if p.is_file() and entry_for_file(p))
        elif entry_for_file(source):
            files = [source]
        else:
            raise WeightsError(f"{source} is neither a zip, a folder, nor an official checkpoint this registry knows")
        for path in tqdm(files, desc="converting", unit="ckpt", disable=not progress):
            entry = entry_for_file(path)
            converted.append((entry, convert_official(path, entry)))
    return converted


#: ``{kind: {pipeline class: component folder}}`` of the pipelines that hold models of the registry's kinds
_PIPELINE_COMPONENTS = {
    "mm-diffusion": {"StereoMMDiffusionPipeline": "unet", "SAVGBenchJointPipeline": "unet"},
    "sr-unet": {"SuperResolutionPipeline": "unet", "SAVGBenchJointPipeline": "sr_unet"},
}


def pipeline_class_name(folder: str | os.PathLike) -> str | None:
    """The pipeline class named in a saved pipeline folder's ``model_index.json`` (the last element when diffusers
    wrote ``[module, class]``)."""
    import json

    name = json.loads((Path(folder) / "model_index.json").read_text()).get("_class_name")
    return name[-1] if isinstance(name, (list, tuple)) else name


def _pipeline_subfolder(folder: Path, kind: str) -> str | None:
    """The component folder of ``kind`` inside a saved pipeline folder, or ``None``."""
    sub = _PIPELINE_COMPONENTS.get(kind, {}).get(pipeline_class_name(folder))
    if sub is None or not (folder / sub / "config.json").is_file():
        return None
    return sub


def resolve_weights(spec: str | os.PathLike, kind: str) -> Path:
    """A loadable folder (or, for Ultralytics, a ``.pt`` file) for a weights spec of the given kind.

    Raises:
        WeightsError: the spec names nothing usable; the message says what to do (e.g. ``savg weights import``).
    """
    path = Path(spec)
    if path.is_dir() and (path / "model_index.json").is_file():  # a pipeline folder: its model of this kind
        sub = _pipeline_subfolder(path, kind)
        if sub is not None:
            return path / sub
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WeightsError(f"{path} is a folder without config.json; expected a converted (save_pretrained) folder")
        return path
    if path.is_file():
        if kind == "ultralytics":
            return path
        entry = entry_for_file(path) or next((e for e in entries(kind) if e.converter), None)
        if entry is None or entry.kind != kind:
            raise WeightsError(f"cannot tell how to convert {path.name} into {kind} weights")
        digest = sha256_file(path)
        out = cache_dir() / "by-sha256" / f"{entry.name}-{digest[:16]}"
        if not (out / "config.json").is_file():
            convert_official(path, entry, out, digest=digest)
        return out
    name = str(spec)
    if name not in REGISTRY:
        known = ", ".join(e.name for e in entries(kind)) or "none"
        raise WeightsError(f"{name!r} is not a folder, a file or a registry name; {kind} entries: {known}")
    entry = REGISTRY[name]
    if entry.kind != kind:
        raise WeightsError(f"registry entry {name!r} holds {entry.kind} weights, not {kind}")
    cached = cache_dir() / entry.name
    if (cached / "config.json").is_file():
        return cached
    if entry.embedded:
        embedded = ASSETS / entry.embedded
        if embedded.exists():
            return embedded
    if entry.hub_repo and not _offline():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(entry.hub_repo, revision=entry.hub_revision))
        except Exception as exc:  # network, auth, missing repo
            raise WeightsError(f"could not download {entry.hub_repo}@{entry.hub_revision}: {exc}") from exc
        return folder / entry.hub_subfolder if entry.hub_subfolder else folder
    if entry.official_source:
        raise WeightsError(f"weights {name!r} are not available offline: get {entry.official_filename} "
                           f"({entry.official_source}) and run `savg weights import FILE_OR_ZIP_OR_FOLDER`")
    if entry.embedded:
        raise WeightsError(f"weights {name!r} are not available offline: their embedded copy "
                           f"savg_hub/assets/weights/{entry.embedded} is missing from this installation")
    raise WeightsError(f"weights {name!r} are not available offline")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def load_model(spec: str | os.PathLike, kind: str, device: str = "cpu"):
    """Resolve ``spec`` and load it with its model class (``from_pretrained``), in eval mode on ``device``."""
    folder = resolve_weights(spec, kind)
    entry = next((e for e in entries(kind)), None)
    if entry is None:
        raise WeightsError(f"no registry entry of kind {kind!r}")
    model = _import(entry.model_class).from_pretrained(str(folder))
    return model.to(device).eval()


def default_weights(kind: str) -> tuple[str, bool]:
    """``(spec, is_official)`` used when no weights are named: the official weights when they are available
    (imported into the cache, or downloadable), else the embedded default trained on the synthetic set."""
    official = [e for e in entries(kind) if e.official_filename]
    for entry in official:
        if (cache_dir() / entry.name / "config.json").is_file() or (entry.hub_repo and not _offline()):
            return entry.name, True
    embedded = [e for e in entries(kind) if e.embedded and (ASSETS / e.embedded).exists()]
    if embedded:
        return embedded[0].name, False
    if official:
        return official[0].name, True
    raise WeightsError(f"no weights of kind {kind!r} in the registry")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (sorted by name) — what results record as the weights' hash."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "savg_weights.json"):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
