"""The loaders ``bench.gpu_load`` compares, each built inside its worker process.

Each factory imports what its loader needs and returns the load function, so imports stay off the clock.
"""

from __future__ import annotations

from collections.abc import Callable


def ours() -> Callable:
    """weightcache.torch.load_safetensors."""
    from weightcache.torch import load_safetensors

    return lambda paths, device: load_safetensors(paths, device=device)


def safetensors_lib() -> Callable:
    """safetensors.torch.load_file, one file after another."""
    from safetensors.torch import load_file

    def load(paths: list[str], device) -> dict:
        tensors = {}
        for path in paths:
            tensors.update(load_file(path, device=str(device)))
        return tensors

    return load


def runai() -> Callable:
    """runai-model-streamer's SafetensorsStreamer."""
    from runai_model_streamer import SafetensorsStreamer

    def load(paths: list[str], device) -> dict:
        with SafetensorsStreamer() as streamer:
            streamer.stream_files(paths, device=str(device))
            return {name: tensor.to(device) for name, tensor in streamer.get_tensors()}

    return load


def fastsafetensors() -> Callable:
    """fastsafetensors' fastsafe_open (no GPUDirect Storage)."""
    from fastsafetensors import fastsafe_open

    def load(paths: list[str], device) -> dict:
        with fastsafe_open(filenames=paths, device=str(device), nogds=True) as opened:
            return {name: opened.get_tensor(name) for name in opened.keys()}  # noqa: SIM118 - not a dict

    return load


LOADERS: dict[str, Callable[[], Callable]] = {
    "safetensors": safetensors_lib,
    "runai": runai,
    "fastsafetensors": fastsafetensors,
    "weightcache": ours,
}
