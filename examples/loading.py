"""Load the examples' big models with ``weightcache.torch.load_safetensors``, or their libraries' loaders.

``load_transformers_model`` and ``load_diffusers_model`` read a model's safetensors with
:func:`~weightcache.torch.load_safetensors` straight onto the app's device (and, for diffusers,
in the app's dtype), build the model without allocating or initialising weights, and make the
loaded tensors its parameters. The result is the model the library's ``from_pretrained`` gives
(the tests check every tensor and the outputs). Each returns ``None`` when the library's own
loader should do it instead, and logs why: ``EXAMPLES_WEIGHTS_LOADER=library`` asks for that
(to compare), or weightcache.torch cannot be imported, or the folder is not laid out as expected
(no safetensors, a quantized model, tensors that do not match the model). The caller then runs
the library loader exactly as before, so its behaviour and its error messages are unchanged.

This module imports torch only when it loads: the apps import it at container start, before the
heavy imports, to start :func:`start_prefetch` first.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from weightcache.prefetch import PrefetchHandle, Targets, prefetch_in_background

if TYPE_CHECKING:
    import torch

LOADER_ENV = "EXAMPLES_WEIGHTS_LOADER"
LOADERS = ("weightcache", "library")
# The stored float dtypes load_safetensors converts to the requested dtype, as diffusers does.
CASTABLE_FLOATS = frozenset({"F16", "BF16", "F32", "F64"})

logger = logging.getLogger(__name__)
#: A transformers or diffusers model class's instances.
Model = TypeVar("Model", bound="torch.nn.Module")


def chosen_loader() -> str:
    """The loader ``EXAMPLES_WEIGHTS_LOADER`` asks for: ``weightcache`` (the default) or ``library``."""
    loader = os.environ.get(LOADER_ENV, "weightcache")
    if loader not in LOADERS:
        raise ValueError(f"{LOADER_ENV} is {loader!r}; set it to weightcache or library")
    return loader


def start_prefetch(targets: Targets) -> PrefetchHandle | None:
    """Start reading ``targets`` into the page cache in the background (``None`` with the library loader,
    which keeps the app exactly as it was without weightcache's loading)."""
    if chosen_loader() != "weightcache":
        return None
    return prefetch_in_background(targets)


def load_transformers_model(model_class: type[Model], folder: Path, device: str) -> Model | None:
    """``model_class.from_pretrained(folder)`` on ``device``, its weights read by ``load_safetensors``.

    transformers' own ``from_pretrained(state_dict=...)`` builds the model on the meta device and
    assigns the loaded tensors, applying what a raw state dict would skip: key renames, tied
    weights, non-persistent buffers, per-module dtypes, ``eval()``. While loading it reserves as
    much device memory again (its allocator warm-up), released at the end: fine for models well
    under half the GPU. ``None`` (logged): use the library's loader.
    """
    files = weight_files(folder, "model.safetensors")
    if (reason := _library_reason(folder, files)) is not None:
        _log_fallback(folder, "transformers", reason)
        return None
    import torch

    from weightcache.torch import load_safetensors

    target = torch.device(device)
    state = load_safetensors(files, device=target)
    model = model_class.from_pretrained(
        None, config=folder, state_dict=state, device_map={"": target}, local_files_only=True
    )
    del state
    model.config.name_or_path = str(folder)  # as from_pretrained(folder) records it
    if target.type == "cuda":
        torch.cuda.empty_cache()  # give back the warm-up's reservation: the tensors were already there
    return model


def load_diffusers_model(
    model_class: type[Model], folder: Path, device: str, dtype: torch.dtype
) -> Model | None:
    """``model_class.from_pretrained(folder, dtype=dtype)`` on ``device``, read by ``load_safetensors``.

    The model is built as diffusers builds it (no weight init, parameters on the meta device,
    buffers made under ``dtype``), its checkpoint's names and shapes are checked against it before
    any byte is read, the tensors are loaded on ``device`` in ``dtype`` and assigned, buffers the
    checkpoint lacks are moved to ``device``, and the model is put in ``eval()`` mode.
    ``None`` (logged): use the library's loader.
    """
    files = weight_files(folder, "diffusion_pytorch_model.safetensors")
    reason = _library_reason(folder, files)
    if reason is None and getattr(model_class, "_keep_in_fp32_modules", None):
        reason = "it keeps some modules in float32"
    if reason is None:
        model = _empty_diffusers_model(model_class, folder, dtype)
        reason = _assignment_reason(model, files)
    if reason is not None:
        _log_fallback(folder, "diffusers", reason)
        return None
    import torch

    from weightcache.torch import load_safetensors

    target = torch.device(device)
    model.load_state_dict(load_safetensors(files, device=target, dtype=dtype), strict=True, assign=True)
    model.to(target)  # the non-persistent buffers, which no checkpoint holds
    model.register_to_config(_name_or_path=folder)
    return model.eval()


def weight_files(folder: Path, weights_name: str) -> list[Path] | None:
    """The safetensors files of a model folder: the shards its index names, or the single file;
    ``None`` when there are none or the index names a file that is not there."""
    index = folder / f"{weights_name}.index.json"
    try:
        if index.is_file():
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files = [folder / name for name in names]
        else:
            files = [folder / weights_name]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return files if files and all(path.is_file() for path in files) else None


def _library_reason(folder: Path, files: list[Path] | None) -> str | None:
    """Why the library's loader must load ``folder``, or ``None`` when weightcache can."""
    if chosen_loader() == "library":
        return f"{LOADER_ENV}=library"
    try:
        importlib.import_module("weightcache.torch")
    except ImportError as exc:
        return f"weightcache.torch is unavailable ({exc})"
    if files is None:
        return "no safetensors weights in the expected layout"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "no readable config.json"
    if not isinstance(config, dict) or config.get("quantization_config"):
        return "a quantized model"
    return None


def _log_fallback(folder: Path, library: str, reason: str) -> None:
    # A fallback nobody asked for is worth a warning: the start is slower than it could be.
    level = logging.INFO if chosen_loader() == "library" else logging.WARNING
    logger.log(level, "loading %s with %s' own loader: %s", folder, library, reason)


def _empty_diffusers_model(model_class: type[Model], folder: Path, dtype: torch.dtype) -> Model:
    from accelerate import init_empty_weights
    from diffusers.models.modeling_utils import no_init_weights

    config = model_class.load_config(folder)
    with no_init_weights(), init_empty_weights(), _default_dtype(dtype):
        model = model_class.from_config(config)
    return model


def _assignment_reason(model: Any, files: list[Path]) -> str | None:
    """Why the checkpoint's tensors cannot be assigned to ``model`` as they are, or ``None``."""
    from weightcache.torch import read_layout

    if any(getattr(module, "_from_deprecated_attn_block", False) for module in model.modules()):
        return "it has attention blocks whose keys diffusers renames on load"
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    stored = {tensor.name: tensor for path in files for tensor in read_layout(path).tensors}
    if set(stored) != set(expected):
        missing, unexpected = len(set(expected) - set(stored)), len(set(stored) - set(expected))
        return f"its tensors do not match the model ({missing} missing, {unexpected} unexpected)"
    for name, tensor in stored.items():
        if tuple(tensor.shape) != expected[name]:
            return f"{name} has shape {list(tensor.shape)}, the model expects {list(expected[name])}"
        if tensor.dtype.startswith("F") and tensor.dtype not in CASTABLE_FLOATS:
            return f"{name} is stored as {tensor.dtype}, which diffusers converts differently"
    return None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Make ``dtype`` torch's default while building a model, as diffusers does (buffers get it)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
