"""The examples' weightcache loader gives exactly the models the libraries' ``from_pretrained`` gives,
and falls back to the library loader when asked to, when weightcache.torch is missing, or when the
layout is not the expected one."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, GroundingDinoForObjectDetection, Sam2Model

from examples.fashion_crop import client
from examples.fashion_crop.pipeline import FashionCropper, load_model, sam_pixel_values
from examples.fashion_crop.weights import DETECTOR, SEGMENTER
from examples.jaguar.pipeline import GenerateParams, load_pipeline
from examples.loading import (
    LOADER_ENV,
    chosen_loader,
    load_diffusers_model,
    load_transformers_model,
    start_prefetch,
)

from .extras import DEVICE
from .test_fashion_crop import ANY_MASK  # the tiny models' masks are noise: keep them all
from .tiny_models import SAM_IMAGE_SIZE

TRANSFORMERS_MODELS = [(GroundingDinoForObjectDetection, DETECTOR.folder), (Sam2Model, SEGMENTER.folder)]
DTYPES = [torch.float32, torch.bfloat16]


def assert_same_model(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Same tensors (names, order, dtypes, devices, bytes), buffers (non-persistent ones too),
    tied parameters, module modes and config."""
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(their_state)
    for name, tensor in their_state.items():
        assert (ours_state[name].dtype, ours_state[name].device) == (tensor.dtype, tensor.device), name
        assert ours_state[name].shape == tensor.shape and _bytes(ours_state[name]) == _bytes(tensor), name
    ours_buffers, their_buffers = dict(ours.named_buffers()), dict(theirs.named_buffers())
    assert list(ours_buffers) == list(their_buffers)
    for name, buffer in their_buffers.items():
        assert ours_buffers[name].dtype == buffer.dtype and _bytes(ours_buffers[name]) == _bytes(buffer), name
    assert _tied_groups(ours) == _tied_groups(theirs)
    assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()]
    assert _config(ours) == _config(theirs)


def _bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's bytes as stored (``torch.equal`` would take -0.0 for 0.0 and never match a NaN)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_outputs(ours: torch.Tensor, theirs: torch.Tensor, name: str = "output") -> None:
    """Outputs of two models with bytewise-equal weights agree to a few float32 rounding steps.

    The loader is responsible for the weights, and :func:`assert_same_model` checks those bytewise.
    The outputs are not bit-for-bit a loader property: weightcache's tensors are 64-byte aligned and
    safetensors' memory-mapped ones sit at whatever offset the file gives them (8 or 24 bytes), so
    the CPU can take a different SIMD kernel that sums in another order. In float32 that moves a
    result by an ulp or two (1.5e-7 for the tiny Flux transformer on a 2-core Xeon).
    ``assert_close``'s defaults for the dtype (float32: rtol 1.3e-6, atol 1e-5, about ten ulps near
    1; bfloat16: rtol 1.6e-2, about two ulps) allow that, while one wrong or misplaced weight moves
    these tiny models' outputs by orders of magnitude more.
    """
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, name
    torch.testing.assert_close(ours, theirs, msg=lambda detail: f"{name}: {detail}")


def _tied_groups(model: torch.nn.Module) -> list[list[str]]:
    """Names of the parameters that share one tensor, grouped."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return sorted(names for names in groups.values() if len(names) > 1)


def _config(model: torch.nn.Module) -> dict:
    config = model.config
    return dict(config) if isinstance(config, dict) else config.to_dict()


@pytest.mark.parametrize(("model_class", "folder"), TRANSFORMERS_MODELS, ids=["grounding-dino", "sam2"])
def test_transformers_models_equal_from_pretrained(model_class, folder: str, baked_weights: Path) -> None:
    ours = load_transformers_model(model_class, baked_weights / folder, DEVICE)
    theirs = model_class.from_pretrained(baked_weights / folder, local_files_only=True).to(DEVICE)

    assert ours is not None
    assert_same_model(ours, theirs)
    assert ours.training is False
    inputs = _model_inputs(model_class, baked_weights / folder)
    with torch.inference_mode():
        ours_out, their_out = ours(**inputs), theirs(**inputs)
    for name in (
        ("logits", "pred_boxes") if model_class is GroundingDinoForObjectDetection else ("pred_masks",)
    ):
        assert_same_outputs(ours_out[name], their_out[name], name)


def _model_inputs(model_class, folder: Path) -> dict:
    image = client.example_outfit()
    if model_class is GroundingDinoForObjectDetection:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        return dict(processor(images=image, text="shirt. jeans.", return_tensors="pt").to(DEVICE))
    boxes = torch.tensor([[[10.0, 20.0, 90.0, 120.0], [30.0, 5.0, 60.0, 40.0]]], device=DEVICE)
    return {"pixel_values": sam_pixel_values(image, SAM_IMAGE_SIZE).to(DEVICE), "input_boxes": boxes}


def test_a_sharded_transformers_checkpoint_loads_every_shard(baked_weights: Path, tmp_path: Path) -> None:
    saved = Sam2Model.from_pretrained(baked_weights / SEGMENTER.folder, local_files_only=True)
    saved.save_pretrained(tmp_path, max_shard_size="300KB")

    ours = load_transformers_model(Sam2Model, tmp_path, DEVICE)

    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    assert ours is not None
    assert_same_model(ours, Sam2Model.from_pretrained(tmp_path, local_files_only=True).to(DEVICE))


def test_the_cropper_finds_the_same_items_with_either_loader(
    baked_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = (baked_weights / DETECTOR.folder, baked_weights / SEGMENTER.folder)
    image = client.example_outfit()
    crops = {}
    for loader in ("weightcache", "library"):
        monkeypatch.setenv(LOADER_ENV, loader)
        cropper = FashionCropper.load(*folders, DEVICE)
        assert cropper.loaders == {"detector": loader, "segmenter": loader}
        found = cropper.crop(image, ["shirt", "jeans", "shoes"], box_threshold=0, max_items=5, rules=ANY_MASK)
        crops[loader] = [(i.label, i.score, i.box, i.cutout.tobytes()) for i in found]

    assert crops["weightcache"] and crops["weightcache"] == crops["library"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sharded", [False, True], ids=["one-file", "sharded"])
def test_the_flux_transformer_equals_from_pretrained(
    flux_weights: Path, tmp_path: Path, dtype: torch.dtype, sharded: bool
) -> None:
    folder = flux_weights / "transformer"
    if sharded:
        FluxTransformer2DModel.from_pretrained(folder).save_pretrained(tmp_path, max_shard_size="100KB")
        folder = tmp_path
    theirs = FluxTransformer2DModel.from_pretrained(folder, dtype=dtype, local_files_only=True).to(DEVICE)

    ours = load_diffusers_model(FluxTransformer2DModel, folder, DEVICE, dtype)

    assert ours is not None
    assert (len(list(folder.glob("*.safetensors"))) > 1) == sharded
    assert_same_model(ours, theirs)
    inputs = _flux_inputs(dtype)
    with torch.inference_mode():
        assert_same_outputs(ours(**inputs).sample, theirs(**inputs).sample)


def _flux_inputs(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A 4x4-latent image and 8 text tokens, as FluxPipeline feeds the tiny transformer."""
    generator = torch.Generator().manual_seed(0)
    rows, columns = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    return {
        "hidden_states": torch.randn(1, 16, 4, generator=generator).to(DEVICE, dtype),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=generator).to(DEVICE, dtype),
        "pooled_projections": torch.randn(1, 32, generator=generator).to(DEVICE, dtype),
        "timestep": torch.tensor([0.5], device=DEVICE, dtype=dtype),
        "img_ids": torch.stack([torch.zeros(16), rows.flatten(), columns.flatten()], 1).to(DEVICE),
        "txt_ids": torch.zeros(8, 3, device=DEVICE),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_the_flux_pipeline_makes_the_same_image_with_either_loader(
    flux_weights: Path, monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    images = {}
    for loader in ("weightcache", "library"):
        monkeypatch.setenv(LOADER_ENV, loader)
        pipeline, used = load_pipeline(flux_weights, DEVICE, dtype)
        assert used == loader
        assert {p.device.type for p in pipeline.transformer.parameters()} == {torch.device(DEVICE).type}
        images[loader] = _generate(
            pipeline, GenerateParams("white cat", steps=2, width=16, height=16, seed=3)
        )

    # As in assert_same_outputs: the weights are the same bytes, the arithmetic may differ by an ulp,
    # and rounding the image to 8 bits can turn that into one step for a value on a boundary.
    difference = (images["weightcache"].int() - images["library"].int()).abs()
    assert images["weightcache"].shape == images["library"].shape and int(difference.max()) <= 1


def _generate(pipeline, params: GenerateParams) -> torch.Tensor:
    image = (
        pipeline(
            params.prompt,
            num_inference_steps=params.steps,
            width=params.width,
            height=params.height,
            guidance_scale=params.guidance,
            max_sequence_length=16,
            generator=torch.Generator(DEVICE).manual_seed(params.seed),
        )
        .images[0]
        .tobytes()
    )
    return torch.frombuffer(bytearray(image), dtype=torch.uint8)


def test_the_library_loader_is_used_when_asked(
    baked_weights: Path, flux_weights: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv(LOADER_ENV, "library")
    caplog.set_level(logging.INFO, logger="examples.loading")

    assert load_transformers_model(Sam2Model, baked_weights / SEGMENTER.folder, DEVICE) is None
    assert (
        load_diffusers_model(FluxTransformer2DModel, flux_weights / "transformer", DEVICE, torch.float32)
        is None
    )
    assert start_prefetch(flux_weights) is None
    assert [record.levelname for record in caplog.records] == ["INFO", "INFO"]
    assert f"{LOADER_ENV}=library" in caplog.records[0].getMessage()


def test_without_weightcache_torch_the_library_loads_and_says_why(
    baked_weights: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setitem(sys.modules, "weightcache.torch", None)  # what `import` sees when it is not there

    cropper = FashionCropper.load(baked_weights / DETECTOR.folder, baked_weights / SEGMENTER.folder, DEVICE)

    assert cropper.loaders == {"detector": "library", "segmenter": "library"}
    assert "weightcache.torch is unavailable" in caplog.records[0].getMessage()
    assert caplog.records[0].levelname == "WARNING"


def test_an_unexpected_layout_falls_back_to_the_library(flux_weights: Path, tmp_path: Path, caplog) -> None:
    pipeline_dir = tmp_path / "flux"
    shutil.copytree(flux_weights, pipeline_dir)
    weights = pipeline_dir / "transformer/diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["x_embedder.weight"] = tensors["x_embedder.weight"].to(torch.float8_e4m3fn)
    save_file(tensors, weights)  # diffusers converts F8 on load; load_safetensors would keep it as stored

    pipeline, used = load_pipeline(pipeline_dir, DEVICE, torch.float32)

    assert used == "library"
    assert pipeline.transformer.x_embedder.weight.dtype == torch.float32
    assert "x_embedder.weight is stored as F8_E4M3" in caplog.text


def test_a_checkpoint_without_safetensors_is_loaded_by_the_library(
    baked_weights: Path, tmp_path: Path, caplog
) -> None:
    saved = Sam2Model.from_pretrained(baked_weights / SEGMENTER.folder, local_files_only=True)
    shutil.copy(baked_weights / SEGMENTER.folder / "config.json", tmp_path)
    torch.save(saved.state_dict(), tmp_path / "pytorch_model.bin")

    model, used = load_model(Sam2Model, tmp_path, DEVICE)

    assert used == "library"
    assert_same_model(model, Sam2Model.from_pretrained(tmp_path, local_files_only=True))
    assert "no safetensors weights in the expected layout" in caplog.text


def test_prefetch_reads_the_weights_with_the_weightcache_loader(flux_weights: Path) -> None:
    handle = start_prefetch([flux_weights / "transformer", flux_weights])

    assert handle is not None
    report = handle.wait(timeout=60)
    assert report.files == sum(1 for path in flux_weights.rglob("*") if path.is_file())


def test_an_unknown_loader_setting_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOADER_ENV, "fast")

    with pytest.raises(ValueError, match=f"^{LOADER_ENV} is 'fast'; set it to weightcache or library$"):
        chosen_loader()
