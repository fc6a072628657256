"""load_safetensors against safetensors.torch.load_file on generated files: every dtype, odd and
empty shapes, many small tensors, shards, entries, dtype conversion, and malformed files.

Each case runs through the CPU loader and through the staged loader that CUDA uses (with tiny
buffers, so tensors straddle buffers and buffers hold many tensors), here on the CPU; the staged
loader also runs with copies deferred until their fence is waited on, as a GPU's asynchronous
copies may be, so a buffer reused before its copies finished would show up as wrong bytes.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")
safetensors_torch = pytest.importorskip("safetensors.torch")

from weightcache import (  # noqa: E402
    LoadError,
    SafetensorsFormatError,
    WeightCache,
    WeightFileNotFoundError,
)
from weightcache._core.synthetic import make_synthetic_model, write_safetensors  # noqa: E402
from weightcache._loading import device_copy  # noqa: E402
from weightcache._loading.device_copy import StagedLoad, Transfer  # noqa: E402
from weightcache._loading.pinned_pool import HostStaging  # noqa: E402
from weightcache._loading.safetensors_format import plan_chunks, read_layout  # noqa: E402
from weightcache.torch import load_safetensors  # noqa: E402

from .helpers import run_python  # noqa: E402

CPU = torch.device("cpu")
# Every safetensors dtype this torch can hold (F6 has no torch dtype; F4 is packed two to a byte).
TORCH_DTYPES = [
    name
    for name, attr in {
        "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16",
        "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "F64": "float64",
        "C64": "complex64", "I64": "int64", "U64": "uint64", "F8_E4M3": "float8_e4m3fn",
        "F8_E5M2": "float8_e5m2", "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
        "F8_E8M0": "float8_e8m0fnu", "F4": "float4_e2m1fn_x2",
    }.items()
    if hasattr(torch, attr)
]  # fmt: skip


class DeferredTransfer(Transfer):
    """Copies that run only when a fence after them is waited on, like a GPU's asynchronous copies."""

    def __init__(self) -> None:
        super().__init__(CPU)
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.done = 0

    def copy(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.pending.extend(pairs)

    def fence(self) -> int:
        return len(self.pending)

    def wait(self, fence: int) -> None:
        for target, source in self.pending[self.done : fence]:
            target.copy_(source)
        self.done = max(self.done, fence)

    def publish(self) -> None:  # later work on the caller's stream runs after every copy so far
        self.wait(len(self.pending))

    def synchronize(self) -> None:
        self.wait(len(self.pending))


def staged(chunk_bytes: int, transfer: Callable[[], Transfer]) -> Callable[..., dict]:
    def load(target: Path, dtype=None) -> dict:
        layouts = [
            read_layout(p) for p in ([target] if target.is_file() else sorted(target.glob("*.safetensors")))
        ]
        per_file = StagedLoad(layouts, transfer(), threads=3, dtype=dtype, chunk_bytes=chunk_bytes).run()
        return {
            t.name: v
            for lay, vs in zip(layouts, per_file, strict=True)
            for t, v in zip(lay.tensors, vs, strict=True)
        }

    return load


LOADERS = {
    "cpu": lambda target, dtype=None: load_safetensors(target, device="cpu", dtype=dtype, threads=3),
    "staged-odd-chunks": staged(1000, lambda: Transfer(CPU)),
    "staged-deferred": staged(64, DeferredTransfer),
}


@pytest.fixture(params=sorted(LOADERS))
def load(request) -> Callable[..., dict]:
    return LOADERS[request.param]


def raw(tensor) -> bytes:
    return bytes(tensor.reshape(-1).view(torch.uint8).tolist()) if tensor.numel() else b""


def assert_same(ours: dict, theirs: dict, device: str = "cpu") -> None:
    assert list(ours) == list(theirs)
    for name, expected in theirs.items():
        got = ours[name]
        assert (got.dtype, got.shape, got.device.type) == (expected.dtype, expected.shape, device), name
        # Compare bytes on the CPU, as uint8: random bytes include NaNs, and not every dtype can be copied.
        assert got.reshape(-1).view(torch.uint8).cpu().equal(expected.reshape(-1).view(torch.uint8)), name


def test_every_dtype_with_odd_zero_size_and_scalar_shapes(load, tmp_path: Path) -> None:
    tensors = {}
    for index, dtype in enumerate(TORCH_DTYPES):
        tensors[f"{dtype}.odd"] = (dtype, [7, 2 * index + 2] if dtype == "F4" else [7, 2 * index + 3])
        tensors[f"{dtype}.empty"] = (dtype, [0, 5] if dtype != "F4" else [3, 0])
        if dtype != "F4":  # torch packs F4 two to a byte, so it has no 0-d form
            tensors[f"{dtype}.scalar"] = (dtype, [])
    path = tmp_path / "all.safetensors"
    write_safetensors(path, tensors)
    assert_same(load(path), safetensors_torch.load_file(path))


def test_thousands_of_small_tensors_and_a_large_one(load, tmp_path: Path) -> None:
    tensors = {f"layers.{i}.bias": ("BF16" if i % 3 else "F32", [i % 17 + 1]) for i in range(3000)}
    tensors["embed.weight"] = ("F16", [301, 129])
    path = tmp_path / "many.safetensors"
    write_safetensors(path, tensors)
    assert_same(load(path), safetensors_torch.load_file(path))


def test_shards_of_a_checkpoint_directory_are_merged_in_order(load, tmp_path: Path) -> None:
    make_synthetic_model(tmp_path / "model", total_bytes=3 * 2048 * 9 + 5, shards=3)
    write_safetensors(tmp_path / "model" / "model-00004-of-00004.safetensors", {"z.b": ("F32", [3, 5])})
    expected: dict = {}
    for shard in sorted((tmp_path / "model").glob("*.safetensors")):
        expected.update(safetensors_torch.load_file(shard))
    assert_same(load(tmp_path / "model"), expected)


def test_files_without_data_between_files_with_data(load, tmp_path: Path) -> None:
    write_safetensors(tmp_path / "m" / "a.safetensors", {"a": ("F32", [3])})
    write_safetensors(tmp_path / "m" / "b.safetensors", {})
    write_safetensors(
        tmp_path / "m" / "c.safetensors", {"c.empty": ("U8", [2, 0])}
    )  # safetensors orders ties by hash
    write_safetensors(tmp_path / "m" / "d.safetensors", {"d": ("I32", [5])})
    expected: dict = {}
    for shard in sorted((tmp_path / "m").glob("*.safetensors")):
        expected.update(safetensors_torch.load_file(shard))
    assert_same(load(tmp_path / "m"), expected)


def test_entries_files_and_lists_are_accepted(cache: WeightCache, tmp_path: Path) -> None:
    make_synthetic_model(tmp_path / "image" / "m", total_bytes=64 * 1024, shards=2)
    entry = cache.ensure(tmp_path / "image" / "m")
    expected: dict = {}
    for shard in sorted(entry.path.glob("*.safetensors")):
        expected.update(safetensors_torch.load_file(shard))
    assert_same(load_safetensors(entry, device="cpu"), expected)
    shards = sorted(entry.path.glob("*.safetensors"))
    assert_same(load_safetensors([str(p) for p in shards], device="cpu"), expected)
    assert list(load_safetensors(shards[1], device="cpu")) == list(safetensors_torch.load_file(shards[1]))


def test_dtype_converts_full_precision_floats_only(load, tmp_path: Path) -> None:
    path = tmp_path / "mixed.safetensors"
    write_safetensors(
        path,
        {
            "w32": ("F32", [4, 3]),
            "w16": ("F16", [5]),
            "scale": ("F32", []),
            "q": ("F8_E4M3", [8]),
            "ids": ("I64", [3]),
            "mask": ("BOOL", [2]),
        },
    )
    reference = safetensors_torch.load_file(path)
    loaded = load(path, dtype=torch.bfloat16)
    assert {name: t.dtype for name, t in loaded.items()} == {
        "w32": torch.bfloat16,
        "w16": torch.bfloat16,
        "scale": torch.bfloat16,
        "q": torch.float8_e4m3fn,
        "ids": torch.int64,
        "mask": torch.bool,
    }
    for name in ("w32", "w16", "scale"):  # bytes, not values: random bytes include NaNs
        assert raw(loaded[name]) == raw(reference[name].to(torch.bfloat16))
    for name in ("q", "ids", "mask"):
        assert raw(loaded[name]) == raw(reference[name])


def test_a_non_float_dtype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    write_safetensors(path, {"w": ("F32", [2])})
    with pytest.raises(LoadError, match="floating-point"):
        load_safetensors(path, device="cpu", dtype=torch.int8)


def test_tensors_have_their_own_storage_and_fill_a_meta_model(tmp_path: Path) -> None:
    make_synthetic_model(tmp_path / "m", total_bytes=4 * 2048 * 3, shards=2)
    state = load_safetensors(tmp_path / "m", device="cpu")
    pointers = {t.untyped_storage().data_ptr() for t in state.values()}
    assert len(pointers) == len(state)
    assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in state.values())
    with torch.device("meta"):
        model = torch.nn.Module()
        model.layers = torch.nn.ModuleList()
        for name in sorted(state):
            layer = torch.nn.Module()
            layer.mlp = torch.nn.Linear(1024, state[name].shape[0], bias=False, dtype=torch.bfloat16)
            model.layers.append(layer)
    model.load_state_dict(state, assign=True)
    assert model.layers[0].mlp.weight.data_ptr() == state["layers.0.mlp.weight"].data_ptr()
    assert model.layers[1].mlp(torch.ones(2, 1024, dtype=torch.bfloat16)).shape == (2, 6)


class CountingStaging(HostStaging):
    def __init__(self) -> None:
        self.allocated: list[int] = []
        super().__init__(self._count)

    def _count(self, nbytes: int) -> torch.Tensor:
        self.allocated.append(nbytes)
        return torch.empty(nbytes, dtype=torch.uint8)


def test_host_memory_is_allocated_once_at_a_power_of_two_whatever_the_model_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.safetensors", tmp_path / "big.safetensors"
    write_safetensors(small, {"w": ("U8", [10, 1000])})
    write_safetensors(big, {"w": ("U8", [200, 1000])})
    staging = CountingStaging()
    for path in (small, big, big):
        layout = read_layout(path)
        per_file = StagedLoad(
            [layout], DeferredTransfer(), threads=3, dtype=None, chunk_bytes=4096, staging=staging
        )
        assert raw(per_file.run()[0][0]) == path.read_bytes()[layout.data_offset :]
    # (3 + 2) buffers of 4 KiB, rounded up to a power of two as torch's pinned allocator would:
    # allocated at the first load, reused by the later ones, whatever the model's size.
    assert staging.allocated == [32768] and staging.nbytes == 32768
    with staging.lend(5000) as smaller:  # a load with fewer threads uses part of the same block
        assert smaller.numel() == 8192 and staging.allocated == [32768]


def test_a_second_load_at_the_same_time_gets_its_own_buffers(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"w": ("U8", [20, 1000])})
    staging = CountingStaging()
    with staging.lend(4096) as held:
        state = StagedLoad(
            [read_layout(path)], Transfer(CPU), threads=2, dtype=None, chunk_bytes=4096, staging=staging
        )
        state.run()
        assert held.numel() == 4096 and staging.allocated == [4096, 16384]


def gated_reads(monkeypatch, gate: threading.Event, held: Callable[[int], bool]) -> list[bool]:
    """Make the reads at the file offsets ``held`` picks wait for ``gate``; return whether each saw it set."""
    seen: list[bool] = []
    real = device_copy._read_chunk

    def read(descriptor, target, offset, path) -> None:
        if held(offset):
            seen.append(gate.wait(timeout=20))  # the guard only: an in-order load would never set it
        real(descriptor, target, offset, path)

    monkeypatch.setattr(device_copy, "_read_chunk", read)
    return seen


def test_a_slow_read_does_not_stall_the_reads_behind_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"a": ("U8", [3, 4096]), "b": ("F32", [2, 4096])})
    layout = read_layout(path)
    copied = threading.Event()

    class Watching(Transfer):
        def copy(self, pairs) -> None:
            super().copy(pairs)
            copied.set()

    seen = gated_reads(monkeypatch, copied, lambda offset: offset == layout.data_offset)
    per_file = StagedLoad([layout], Watching(CPU), threads=3, dtype=None, chunk_bytes=4096).run()
    assert seen == [True]  # a later chunk was copied out while the first was still being read
    names = [tensor.name for tensor in layout.tensors]
    assert_same(dict(zip(names, per_file[0], strict=True)), safetensors_torch.load_file(path))


def test_the_next_files_tensors_are_allocated_while_reads_are_in_flight(tmp_path: Path, monkeypatch) -> None:
    first, second = tmp_path / "1.safetensors", tmp_path / "2.safetensors"
    write_safetensors(first, {"a": ("U8", [2, 4096])})
    write_safetensors(second, {"b": ("U8", [2, 4096])})
    layouts = [read_layout(first), read_layout(second)]
    allocated: list[Path] = []
    second_allocated = threading.Event()
    real_empty = device_copy.empty_tensors

    def empty(layout, device):
        allocated.append(layout.path)
        if layout.path == second:
            second_allocated.set()
        return real_empty(layout, device)

    monkeypatch.setattr(device_copy, "empty_tensors", empty)
    end_of_first = layouts[0].data_offset + layouts[0].data_bytes
    seen = gated_reads(monkeypatch, second_allocated, lambda offset: offset < end_of_first)
    per_file = StagedLoad(layouts, Transfer(CPU), threads=4, dtype=None, chunk_bytes=4096).run()
    assert seen and all(seen) and allocated == [first, second]
    assert [raw(t[0]) for t in per_file] == [
        p.read_bytes()[lay.data_offset :] for p, lay in zip((first, second), layouts, strict=True)
    ]


def test_reads_after_the_first_start_on_a_chunk_boundary_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {f"t{i}": ("F32", [999 + i]) for i in range(9)})
    layout = read_layout(path)
    chunks = plan_chunks(layout.tensors, 4096, data_offset=layout.data_offset)
    assert [(layout.data_offset + c.start) % 4096 for c in chunks[1:]] == [0] * (len(chunks) - 1)
    assert (
        chunks[0].length == 4096 - layout.data_offset % 4096
        and sum(c.length for c in chunks) == layout.data_bytes
    )
    assert_same(load_safetensors(path, device="cpu", threads=2), safetensors_torch.load_file(path))


def write_raw(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def header(**tensors: tuple[str, list[int], list[int]]) -> bytes:
    return json.dumps(
        {n: {"dtype": d, "shape": s, "data_offsets": o} for n, (d, s, o) in tensors.items()}
    ).encode()


DUPLICATE = (
    b'{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
    b'"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
)
MALFORMED = {
    "too small": lambda p: p.write_bytes(b"\x01\x00") and p,
    "header too large": lambda p: p.write_bytes(struct.pack("<Q", 200_000_000) + b"{}") and p,
    "header past the end": lambda p: p.write_bytes(struct.pack("<Q", 100) + b"{}") and p,
    "not json": lambda p: write_raw(p, b'{"t":'),
    "not an object": lambda p: write_raw(p, b"[1, 2]"),
    "tensor not an object": lambda p: write_raw(p, b'{"t": 1}'),
    "unknown dtype": lambda p: write_raw(p, header(t=("Q7", [1], [0, 1])), b"a"),
    "no torch dtype": lambda p: write_raw(p, header(t=("F6_E2M3", [4], [0, 3])), b"abc"),
    "negative shape": lambda p: write_raw(p, header(t=("U8", [-1], [0, 1])), b"a"),
    "size mismatch": lambda p: write_raw(p, header(t=("F32", [2], [0, 4])), b"abcd"),
    "hole": lambda p: write_raw(p, header(a=("U8", [2], [0, 2]), b=("U8", [2], [3, 5])), b"abcde"),
    "overlap": lambda p: write_raw(p, header(a=("U8", [2], [0, 2]), b=("U8", [2], [1, 3])), b"abc"),
    "truncated data": lambda p: write_raw(p, header(t=("U8", [4], [0, 4])), b"abc"),
    "trailing bytes": lambda p: write_raw(p, header(t=("U8", [2], [0, 2])), b"abc"),
    "bad metadata": lambda p: write_raw(p, b'{"__metadata__": {"a": 1}}'),
    "duplicate name": lambda p: write_raw(p, DUPLICATE, b"ab"),
    "odd F4": lambda p: write_raw(p, header(t=("F4", [3], [0, 1])), b"a"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_one_clear_error(case: str, tmp_path: Path) -> None:
    path = MALFORMED[case](tmp_path / "bad.safetensors")
    with pytest.raises(safetensors.SafetensorError):  # safetensors refuses it too
        safetensors_torch.load_file(path)
    with pytest.raises(SafetensorsFormatError) as caught:
        load_safetensors(path, device="cpu")
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and isinstance(caught.value, ValueError)


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(WeightFileNotFoundError, match="does not exist") as caught:
        load_safetensors(tmp_path / "nope", device="cpu")
    assert isinstance(caught.value, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    write_safetensors(tmp_path / "empty" / "sub" / "model.safetensors", {"w": ("U8", [1])})
    with pytest.raises(WeightFileNotFoundError, match=r"no \.safetensors files at its top level"):
        load_safetensors(tmp_path / "empty", device="cpu")


def test_a_tensor_in_two_files_is_refused(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "a.safetensors", {"w": ("U8", [1])})
    write_safetensors(tmp_path / "b.safetensors", {"w": ("U8", [1])})
    with pytest.raises(LoadError, match="'w' is in both"):
        load_safetensors(tmp_path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "a.safetensors", {"w": ("U8", [1])})
    with pytest.raises(LoadError, match="device cuda is not available"):
        load_safetensors(tmp_path)
    with pytest.raises(LoadError, match="is not a torch device"):
        load_safetensors(tmp_path, device="gpu-please")


def test_importing_weightcache_never_imports_torch() -> None:
    result = run_python(
        "import sys, weightcache, weightcache.prefetch, weightcache.cli\n"
        "import weightcache._loading.safetensors_format\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    assert result.returncode == 0, result.stderr


def test_without_torch_the_error_says_which_extra_to_install() -> None:
    result = run_python("import sys; sys.modules['torch'] = None\nimport weightcache.torch\n")
    assert result.returncode != 0
    assert "weightcache.torch needs torch: pip install 'weightcache[torch]'" in result.stderr
