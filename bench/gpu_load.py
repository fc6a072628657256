"""Load safetensors files onto a device with every loader, side by side, warm and cold.

    python -m bench.gpu_load                           # on a CUDA machine: 8 GiB in 4 shards
    python -m bench.gpu_load --device cpu --quick      # CPU smoke run (CI keeps the harness alive)
    python -m bench.gpu_load --files /models/x/*.safetensors --json results.json

Rows: the raw parallel-read ceiling (``weightcache.prefetch``: 16 threads, no copy), the pinned
host-to-device copy ceiling (CUDA only), ``safetensors.torch.load_file``, runai-model-streamer,
fastsafetensors (CUDA only; each skipped, with a note, when not installed) and
``weightcache.torch.load_safetensors``. Every load runs in a fresh process (first call, default
settings) and is timed until the tensors are usable: on CUDA after a synchronize; on the CPU after
touching every page, since ``load_file`` maps the file lazily and would otherwise read nothing.
Warm: the files are in the page cache. Cold: each file's pages are dropped first (``fsync`` then
``posix_fadvise(DONTNEED)``, or ``/proc/sys/vm/drop_caches`` as root where that is not enough),
checked with ``RWF_NOWAIT`` reads.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import weightcache
from weightcache._core.synthetic import write_safetensors
from weightcache._loading.safetensors_format import read_layout
from weightcache.prefetch import prefetch

from .gpu_loaders import LOADERS
from .pagecache import evict

GIB = 1024**3
FILL_ROW = "page-cache fill (prefetch: 16 threads, sendfile, no copy)"
# Ceiling rows -> the worker that measures them (the fill runs in this process).
CEILINGS = {FILL_ROW: "", "raw parallel read (16 threads, preadv into memory)": "raw-read"}
PEERS = {"runai": "runai-model-streamer", "fastsafetensors": "fastsafetensors"}


def pinned_copy_seconds(nbytes: int, device) -> float:
    """Best of three copies of one pinned host buffer to the device."""
    import torch

    source = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    target = torch.empty(nbytes, dtype=torch.uint8, device=device)
    best = float("inf")
    for _ in range(3):
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        target.copy_(source, non_blocking=True)
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def raw_read_seconds(paths: list[str], pinned: bool, threads: int = 16, chunk: int = 16 * 1024**2) -> float:
    """Read every byte with ``threads`` threads of ``preadv`` into one reused (pinned) buffer each.

    Only a pinned buffer needs torch; an unpinned one is a ``bytearray``, so a CPU run's worker
    does not import torch (seconds, off the clock but not off the run).
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def buffer() -> tuple[object, memoryview]:
        if not pinned:
            plain = bytearray(chunk)
            return plain, memoryview(plain)
        import torch

        from weightcache._loading.tensor_io import host_memory

        tensor = torch.empty(chunk, dtype=torch.uint8, pin_memory=True)
        return tensor, host_memory(tensor)

    def read(path: str, offset: int) -> None:
        if not hasattr(local, "view"):
            local.buffer, local.view = buffer()
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.preadv(descriptor, [local.view], offset)
        finally:
            os.close(descriptor)

    ranges = [(path, offset) for path in paths for offset in range(0, os.path.getsize(path), chunk)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: read(*item), ranges))
    return time.perf_counter() - started


def worker(name: str, device_name: str, paths: list[str]) -> dict:
    """Time one load in this (fresh) process; the CUDA context is made before the clock starts."""
    if name == "raw-read" and not device_name.startswith("cuda"):
        nbytes = sum(os.path.getsize(p) for p in paths)
        return {"seconds": raw_read_seconds(paths, pinned=False), "bytes": nbytes}
    import torch

    device = torch.device(device_name)
    if device.type == "cuda":
        device = torch.device(
            "cuda", device.index if device.index is not None else torch.cuda.current_device()
        )
        torch.empty(1, device=device)
        torch.cuda.synchronize(device)
    if name == "raw-read":
        nbytes = sum(os.path.getsize(p) for p in paths)
        return {"seconds": raw_read_seconds(paths, pinned=device.type == "cuda"), "bytes": nbytes}
    if name == "pinned-copy":
        nbytes = min(sum(os.path.getsize(p) for p in paths), GIB)
        return {"seconds": pinned_copy_seconds(nbytes, device), "bytes": nbytes}
    load = LOADERS[name]()
    started = time.perf_counter()
    tensors = load(paths, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    else:
        for tensor in tensors.values():  # one byte per page makes a lazy (mmap) loader read it all
            if tensor.numel():
                tensor.reshape(-1).view(torch.uint8)[::4096].sum()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": sum(t.numel() * t.element_size() for t in tensors.values())}


def run_worker(name: str, device: str, paths: list[Path]) -> dict:
    """Run :func:`worker` in a fresh Python process and return what it measured."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_load", "--worker", name, "--device", device, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- page cache ----------------------------------------------------------------------------


# --- files ---------------------------------------------------------------------------------


def write_model(directory: Path, total_bytes: int, shards: int) -> list[Path]:
    """A transformer-shaped bf16 checkpoint: per layer four square projections, three MLP matrices
    and two norms, split into ``shards`` files of about ``total_bytes / shards``; reused if present."""
    hidden = 4096 if total_bytes >= 4 * GIB else 1024 if total_bytes >= 256 * 1024**2 else 256
    intermediate = hidden * 8 // 3 // 64 * 64
    layer = {
        **{f"self_attn.{p}_proj.weight": [hidden, hidden] for p in "qkvo"},
        "mlp.gate_proj.weight": [intermediate, hidden],
        "mlp.up_proj.weight": [intermediate, hidden],
        "mlp.down_proj.weight": [hidden, intermediate],
        "input_layernorm.weight": [hidden],
        "post_attention_layernorm.weight": [hidden],
    }
    layer_bytes = 2 * sum(_count(shape) for shape in layer.values())
    layers = max(shards, round(total_bytes / layer_bytes))
    paths = [directory / f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    if all(path.exists() for path in paths) and (directory / "done").exists():
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    for shard, path in enumerate(paths):
        first, last = shard * layers // shards, (shard + 1) * layers // shards
        tensors = {
            f"layers.{i}.{name}": ("BF16", shape) for i in range(first, last) for name, shape in layer.items()
        }
        write_safetensors(path, tensors)
    (directory / "done").write_text("")
    return paths


def _count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def describe(paths: list[Path], device: str) -> list[str]:
    """Lines saying where this ran: machine, versions, files (a CPU run does not import torch here)."""
    versions = {"python": platform.python_version(), "weightcache": weightcache.__version__}
    for package in ("torch", "safetensors", *PEERS.values()):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    gpu = "none (CPU numbers)"
    if device.startswith("cuda"):
        import torch

        gpu = f"{torch.cuda.get_device_name()}; CUDA (torch): {torch.version.cuda}"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    sizes = [path.stat().st_size for path in paths]
    tensors = sum(len(read_layout(path).tensors) for path in paths)
    return [
        f"machine: {platform.node()} ({platform.machine()}, kernel {platform.release()}), "
        f"{os.cpu_count()} CPUs, {memory:.0f} GiB RAM; GPU: {gpu}",
        "versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"files: {len(paths)} ({tensors} tensors, {sum(sizes) / GIB:.2f} GiB: "
        + ", ".join(f"{size / 1e9:.3f} GB" for size in sizes)
        + f") in {paths[0].parent}",
    ]


# --- the run -------------------------------------------------------------------------------


def measure(paths: list[Path], device: str, loaders: list[str], repeat: int) -> dict:
    """GB/s of every row, warm and cold, ``repeat`` times each (loaders interleaved)."""
    rows = [*CEILINGS, *loaders]
    results: dict[str, dict[str, list[float]]] = {name: {"warm": [], "cold": []} for name in rows}
    notes: dict[str, str] = {}
    for _ in range(repeat):
        for mode in ("warm", "cold"):
            for name in results:
                if name in notes and notes[name].startswith("failed"):
                    continue
                if mode == "warm":
                    prefetch(paths)
                else:
                    notes["cold"] = evict(paths)
                if name == FILL_ROW:
                    results[name][mode].append(prefetch(paths, threads=16).gb_per_s)
                    continue
                measured = run_worker(CEILINGS.get(name, name), device, paths)
                if "error" in measured:
                    notes[name] = f"failed: {measured['error']}"
                else:
                    results[name][mode].append(measured["bytes"] / measured["seconds"] / 1e9)
    if device.startswith("cuda"):
        copy = run_worker("pinned-copy", device, paths)
        results["pinned host-to-device copy"] = {"warm": [copy["bytes"] / copy["seconds"] / 1e9], "cold": []}
    return {"gb_per_s": results, "notes": notes}


def table(measured: dict, repeat: int) -> list[str]:
    """The results as a markdown table: best GB/s of ``repeat`` runs, and the ratio to safetensors."""
    results = measured["gb_per_s"]
    best = {
        name: {mode: max(values) if values else None for mode, values in modes.items()}
        for name, modes in results.items()
    }
    baseline = best.get("safetensors", {})
    lines = [
        f"| loader (best of {repeat}) | warm GB/s | cold GB/s | warm vs safetensors | cold vs safetensors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, modes in best.items():
        cells = [_number(modes["warm"]), _number(modes["cold"])]
        for mode in ("warm", "cold"):
            base = baseline.get(mode)
            cells.append(f"{modes[mode] / base:.2f}x" if modes[mode] and base else "")
        note = measured["notes"].get(name, "")
        lines.append(f"| {name}{f' ({note})' if note else ''} | " + " | ".join(cells) + " |")
    return lines


def _number(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_load", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="safetensors files (default: synthetic ones)")
    parser.add_argument("--device", help="cuda, cuda:N or cpu [default: cuda if available]")
    parser.add_argument("--size-gb", type=float, default=8.0, help="synthetic model size [8]")
    parser.add_argument("--shards", type=int, default=4, help="synthetic model shards [4]")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-data/gpu_load"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row and mode [3]")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 shards, 1 run: a smoke test")
    parser.add_argument("--loaders", default=",".join(LOADERS), help="comma-separated subset to run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one load in this process)."""
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.device, [str(p) for p in args.files])), flush=True)
        os._exit(0)  # measured and reported: skip torch's interpreter teardown (~0.4 s a process)
    device = args.device or _default_device()
    size_gb, shards, repeat = (1 / 16, 2, 1) if args.quick else (args.size_gb, args.shards, args.repeat)
    paths = args.files or write_model(args.data_dir / f"{size_gb:g}gib-{shards}", int(size_gb * GIB), shards)
    loaders = [name for name in args.loaders.split(",") if name in LOADERS]
    missing = [name for name in loaders if name in PEERS and not _installed(PEERS[name])]
    loaders = [name for name in loaders if name not in missing]
    lines = describe(paths, device)
    measured = measure(paths, device, loaders, repeat)
    lines += ["", *table(measured, repeat), ""]
    lines += [f"skipped {name}: {PEERS[name]} is not installed" for name in missing]
    lines.append(f"cold runs dropped the page cache with: {measured['notes'].get('cold', 'not run')}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"device": device, "lines": lines, **measured}, indent=2))


def _default_device() -> str:
    import torch  # only to look for a GPU: a run given --device cpu never imports torch in this process

    return "cuda" if torch.cuda.is_available() else "cpu"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
