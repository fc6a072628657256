"""The examples' model loading both ways: weightcache's (``examples/loading.py``) against the libraries'.

    python -m bench.example_loading                    # tiny test models, then 0.87 GB and 1.6 GB ones
    python -m bench.example_loading --models flux-1.6gb --repeat 5 --device cuda

Each load is a fresh Python process, timed from its start. With ``+ prefetch`` it first starts
``start_prefetch`` on the model's folder, as the apps' containers do; then it imports torch and
the model's library, loads the model as the app does, and stops the clock when the weights are
usable (on the CPU after touching every page, since the libraries map files lazily; on CUDA
after a synchronize). Variants: ``library`` (``EXAMPLES_WEIGHTS_LOADER=library``: the app as it
was), ``weightcache`` and ``weightcache + prefetch`` (the app now). Cold: the model's files were
dropped from the page cache first (``posix_fadvise(DONTNEED)`` per file, checked); warm: the same
load again straight after. The models are written once under ``--data-dir`` with random weights:
the tests' tiny ones, SAM-2 large's architecture (fp32, as on the Hub) and a Flux transformer
scaled to 6 + 8 blocks 1536 wide (bf16, sharded in diffusers' layout, as shuttle-jaguar's).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any import: a container's start is what is measured

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

VARIANTS = ["library", "weightcache", "weightcache + prefetch"]
#: name -> (library, model class, dtype the app loads it in or None for the stored one)
MODELS = {
    "grounding-dino-tiny-test": ("transformers", "GroundingDinoForObjectDetection", None),
    "sam2-tiny-test": ("transformers", "Sam2Model", None),
    "flux-tiny-test": ("diffusers", "FluxTransformer2DModel", "bfloat16"),
    "sam2-large-0.87gb": ("transformers", "Sam2Model", None),
    "flux-1.6gb": ("diffusers", "FluxTransformer2DModel", "bfloat16"),
}


def child(name: str, variant: str, device_name: str, folder: Path) -> dict:
    """One start in this process: seconds since the process began when imports and the load were done."""
    if variant.endswith("+ prefetch"):
        from examples.loading import start_prefetch

        start_prefetch(folder)
    import torch

    library, class_name, dtype_name = MODELS[name]
    model_class = getattr(importlib.import_module(library), class_name)
    load = _jaguar_load if library == "diffusers" else _fashion_crop_load
    importlib.import_module(f"examples.{'loading' if library == 'diffusers' else 'fashion_crop.pipeline'}")
    imported = time.perf_counter() - STARTED
    model = load(model_class, folder, device_name, dtype_name)
    touch(model, torch.device(device_name))
    ready = time.perf_counter() - STARTED
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return {"imported": imported, "ready": ready, "load": ready - imported, "bytes": nbytes}


def _jaguar_load(model_class, folder: Path, device: str, dtype_name: str):
    """The transformer as jaguar loads it (with diffusers' loader: this one component of the pipeline)."""
    import torch

    from examples.loading import load_diffusers_model

    dtype = getattr(torch, dtype_name)
    model = load_diffusers_model(model_class, folder, device, dtype)
    if model is None:
        model = model_class.from_pretrained(folder, dtype=dtype, local_files_only=True).to(device)
    return model


def _fashion_crop_load(model_class, folder: Path, device: str, _dtype_name: None):
    """A model as fashion_crop loads it."""
    from examples.fashion_crop.pipeline import load_model

    return load_model(model_class, folder, device)[0].to(device).eval()


def touch(model, device) -> None:
    """Wait until every weight is really there: a synchronize on CUDA, a read of every page on the CPU."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return
    for tensor in model.state_dict().values():
        tensor.detach().reshape(-1).view(torch.uint8)[::4096].sum()


def write_models(data_dir: Path, names: list[str]) -> dict[str, Path]:
    """Each model's folder, written with random weights unless already there."""
    from tests.examples import tiny_models

    writers = {
        "grounding-dino-tiny-test": tiny_models.save_grounding_dino,
        "sam2-tiny-test": tiny_models.save_sam2,
        "flux-tiny-test": lambda folder: tiny_models.save_flux(folder) / "transformer",
        "sam2-large-0.87gb": save_sam2_large,
        "flux-1.6gb": save_flux_scaled,
    }
    folders = {}
    for name in names:
        done = data_dir / name / "written"
        if not done.exists():
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(str(writers[name](data_dir / name / "model")))
        folders[name] = Path(done.read_text())
    return folders


def save_sam2_large(folder: Path) -> Path:
    """SAM-2.1 Hiera large's architecture (217M parameters, fp32 as on the Hub), random weights."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(
        hidden_size=144,
        blocks_per_stage=[2, 6, 36, 4],
        embed_dim_per_stage=[144, 288, 576, 1152],
        num_attention_heads_per_stage=[2, 4, 8, 16],
        window_size_per_stage=[8, 4, 16, 8],
        global_attention_blocks=[23, 33, 43],
    )
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
    Sam2Model(Sam2Config(vision_config=vision)).save_pretrained(folder)
    return folder


def save_flux_scaled(folder: Path) -> Path:
    """A Flux transformer with 6 double and 8 single blocks 1536 wide (811M parameters), bf16, in
    500 MB shards: shuttle-jaguar's layout and tensor shapes, at a fifteenth of its size."""
    import torch
    from diffusers import FluxTransformer2DModel

    torch.set_default_dtype(torch.bfloat16)
    model = FluxTransformer2DModel(
        in_channels=64,
        num_layers=6,
        num_single_layers=8,
        attention_head_dim=128,
        num_attention_heads=12,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        axes_dims_rope=[16, 56, 56],
    )
    model.save_pretrained(folder, max_shard_size="500MB")
    return folder


def run(name: str, variant: str, device: str, folder: Path, cold: bool) -> dict:
    """One start in a fresh process; cold ones after dropping the model's files from the page cache."""
    from bench.pagecache import evict

    evicted = evict(sorted(folder.glob("*.safetensors"))) if cold else "warm"
    env = {**os.environ, "EXAMPLES_WEIGHTS_LOADER": variant.split(" ")[0]}
    command = [sys.executable, "-m", "bench.example_loading", "--child", name, variant, device, str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path.cwd(), env=env)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "evicted_with": evicted}


def table(name: str, runs: dict[str, dict[str, list[dict]]]) -> list[str]:
    """A markdown table of one model's medians (min-max) for every variant, cold and warm."""
    nbytes = next(iter(runs.values()))["cold"][0]["bytes"]
    size = f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"
    lines = [
        f"| {name} ({size}) | cold: load (s) | cold: ready (s) | warm: load (s) | warm GB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant, by_mode in runs.items():
        cold, warm = by_mode["cold"], by_mode["warm"]
        cells = [_spread([r["load"] for r in cold]), _spread([r["ready"] for r in cold])]
        warm_load = statistics.median(r["load"] for r in warm)
        speed = f"{nbytes / warm_load / 1e9:.2f}" if nbytes >= 1e8 else "-"
        cells += [_spread([r["load"] for r in warm]), speed]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    """Where this ran: CPUs, memory, kernel, versions, and how busy the machine was."""
    import platform
    from importlib.metadata import version

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    packages = ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "diffusers", "safetensors"))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs, {memory:.0f} GiB RAM, kernel {platform.release()}, "
        f"Python {platform.python_version()}; {packages}; load average {load}"
    )


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    """Load every model every way, ``--repeat`` times, cold then warm; print a table per model."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.example_loading", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    parser.add_argument("--repeat", type=int, default=3, help="starts of each variant, cold and warm [3]")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data/example_loading"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, variant, device, folder = args.child
        print(json.dumps(child(name, variant, device, Path(folder))))
        return
    folders = write_models(args.data_dir, args.models.split(","))
    lines = [machine()]
    results: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for name, folder in folders.items():
        runs = results[name] = {variant: {"cold": [], "warm": []} for variant in VARIANTS}
        for _ in range(args.repeat):
            for variant in VARIANTS:
                runs[variant]["cold"].append(run(name, variant, args.device, folder, cold=True))
                runs[variant]["warm"].append(run(name, variant, args.device, folder, cold=False))
    lines += [machine(), f"device {args.device}; median (min-max) of {args.repeat} fresh processes per cell"]
    for name, runs in results.items():
        lines += ["", *table(name, runs)]
    evictions = {r["evicted_with"] for runs in results.values() for v in runs.values() for r in v["cold"]}
    lines += ["", f"cold starts: files dropped from the page cache with {', '.join(sorted(evictions))}"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"lines": lines, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
