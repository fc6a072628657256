"""Cold start, end to end: a fresh process imports, builds a model and loads its weights from a cold cache.

    python -m bench.cold_start                         # CPU here: 16 MiB and 2 GiB models
    python -m bench.cold_start --device cuda --sizes 0.015625,8

Each run is a new Python process started after the model's files were dropped from the page
cache. It imports torch, then spends ``--import-seconds`` of CPU in Python (standing in for
transformers, diffusers and the model code), builds the model on the meta device, loads the
state dict and ``load_state_dict(..., assign=True)``, and stops the clock when the weights are
usable (on CUDA after a synchronize; on the CPU after touching every page, since ``load_file``
maps files lazily). Variants: ``safetensors.torch.load_file`` or ``load_safetensors``, each
with and without ``prefetch_in_background`` started on the first line, before the imports.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any import: the process's own start is what is measured

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

VARIANTS = ["safetensors", "safetensors + prefetch", "weightcache", "weightcache + prefetch"]
GIB = 1024**3


def child(variant: str, device_name: str, import_seconds: float, directory: Path) -> dict:
    """One cold start in this process; returns seconds since process start at each milestone."""
    handle = None
    if variant.endswith("+ prefetch"):
        from weightcache.prefetch import prefetch_in_background

        handle = prefetch_in_background(directory)
    import torch

    busy_until = time.perf_counter() + import_seconds
    while time.perf_counter() < busy_until:  # Python-level work, as importing large packages is
        sum(range(1000))
    imported = time.perf_counter() - STARTED
    paths = sorted(directory.glob("*.safetensors"))
    device = torch.device(device_name)
    model = meta_model(paths)
    if variant.startswith("weightcache"):
        from weightcache.torch import load_safetensors

        state = load_safetensors(paths, device=device)
    else:
        from safetensors.torch import load_file

        state = {name: t for path in paths for name, t in load_file(path, device=device_name).items()}
    model.load_state_dict(state, assign=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    else:
        for parameter in model.parameters():
            parameter.detach().reshape(-1).view(torch.uint8)[::4096].sum()
    prefetched = handle.wait().bytes if handle else 0
    return {"imported": imported, "ready": time.perf_counter() - STARTED, "prefetched_bytes": prefetched}


def meta_model(paths: list[Path]):
    """A module whose parameters have the files' names, shapes and dtypes, built on the meta device."""
    import torch

    from weightcache._loading.safetensors_format import read_layout
    from weightcache._loading.tensor_io import torch_dtype, torch_shape

    root = torch.nn.Module()
    with torch.device("meta"):
        for path in paths:
            for tensor in read_layout(path).tensors:
                *parents, leaf = tensor.name.split(".")
                module = root
                for part in parents:
                    if not hasattr(module, part):
                        module.add_module(part, torch.nn.Module())
                    module = getattr(module, part)
                empty = torch.empty(torch_shape(path, tensor), dtype=torch_dtype(path, tensor))
                module.register_parameter(leaf, torch.nn.Parameter(empty, requires_grad=False))
    return root


def run(variant: str, args: argparse.Namespace, directory: Path) -> dict:
    """One cold start in a fresh process, after dropping the model's files from the page cache."""
    from bench.pagecache import evict

    how = evict(sorted(directory.glob("*.safetensors")))
    command = [sys.executable, "-m", "bench.cold_start", "--child", variant, "--device", args.device]
    command += ["--import-seconds", str(args.import_seconds), str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path.cwd())
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "evicted_with": how}


def main(argv: list[str] | None = None) -> None:
    """Run every variant ``--repeat`` times per model size and print a table per size."""
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    parser.add_argument("--sizes", default="0.015625,2", help="model sizes in GiB [0.015625,2]")
    parser.add_argument("--import-seconds", type=float, default=2.0, help="simulated import work [2]")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant [3]")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data/gpu_load"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.device, args.import_seconds, args.directory)), flush=True)
        os._exit(0)  # the clock has stopped: skip torch's interpreter teardown (~0.4 s a process)
    from bench.gpu_load import write_model

    results: dict[str, dict[str, list[dict]]] = {}
    for size in (float(text) for text in args.sizes.split(",")):
        directory = args.data_dir / f"{size:g}gib-4"
        write_model(directory, int(size * GIB), 4)
        runs = results[f"{size:g} GiB"] = {variant: [] for variant in VARIANTS}
        for _ in range(args.repeat):
            for variant in VARIANTS:
                runs[variant].append(run(variant, args, directory))
    lines = [f"device {args.device}, simulated import {args.import_seconds} s after `import torch`, "]
    lines[0] += (
        f"median of {args.repeat} fresh processes, model files dropped from the page cache before each"
    )
    for size, runs in results.items():
        lines += ["", f"| {size} model | ready after (s) | imports done (s) | load after imports (s) |"]
        lines.append("|---|---:|---:|---:|")
        for variant, samples in runs.items():
            ready = statistics.median(sample["ready"] for sample in samples)
            imported = statistics.median(sample["imported"] for sample in samples)
            lines.append(f"| {variant} | {ready:.2f} | {imported:.2f} | {ready - imported:.2f} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"lines": lines, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
