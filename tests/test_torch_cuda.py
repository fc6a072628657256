"""load_safetensors onto a CUDA GPU, checked against safetensors.torch.load_file (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from weightcache._core.synthetic import make_synthetic_model, write_safetensors  # noqa: E402
from weightcache._loading.device_copy import StagedLoad, Transfer  # noqa: E402
from weightcache._loading.safetensors_format import read_layout  # noqa: E402
from weightcache.torch import load_safetensors  # noqa: E402

from .test_torch_load import TORCH_DTYPES, assert_same  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_every_dtype_and_shape_matches_load_file_on_cuda(tmp_path: Path) -> None:
    tensors = {f"{d}.odd": (d, [7, 6] if d == "F4" else [7, 5]) for d in TORCH_DTYPES}
    tensors |= {f"{d}.scalar": (d, []) for d in TORCH_DTYPES if d != "F4"}
    tensors |= {f"{d}.empty": (d, [0, 4]) for d in TORCH_DTYPES}
    tensors |= {f"small.{i}": ("BF16", [i % 13 + 1]) for i in range(2000)}
    path = tmp_path / "all.safetensors"
    write_safetensors(path, tensors)
    assert_same(load_safetensors(path), safetensors_torch.load_file(path), device="cuda")


def test_shards_larger_than_the_buffers_with_a_dtype_cast(tmp_path: Path) -> None:
    make_synthetic_model(tmp_path / "m", total_bytes=96 * 1024 * 1024, shards=3)
    write_safetensors(tmp_path / "m" / "model-00004-of-00004.safetensors", {"f32": ("F32", [1000, 333])})
    expected: dict = {}
    for shard in sorted((tmp_path / "m").glob("*.safetensors")):
        expected.update(safetensors_torch.load_file(shard))
    assert_same(load_safetensors(tmp_path / "m", device="cuda:0"), expected, device="cuda")
    cast = load_safetensors(tmp_path / "m", dtype=torch.float16)
    assert cast["f32"].dtype == torch.float16
    assert cast["f32"].cpu().view(torch.int16).equal(expected["f32"].to(torch.float16).view(torch.int16))


def test_copies_wait_for_work_still_queued_on_the_callers_stream(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    write_safetensors(path, {f"w{i}": ("F16", [513, 257]) for i in range(8)})
    expected = safetensors_torch.load_file(path)
    # Blocks of the same size, freed while slow kernels that write them are still queued: the
    # loader's tensors reuse them, and copies that did not wait for the caller's stream would be
    # overwritten by those kernels.
    slow = torch.randn(4096, 4096, device="cuda")
    freed = [torch.empty(513, 257, dtype=torch.float16, device="cuda") for _ in range(8)]
    for block in freed:
        for _ in range(10):
            slow = torch.tanh(slow @ slow)
        block.fill_(1.0)
    del freed
    layout = read_layout(path)
    (tensors,) = StagedLoad(
        [layout], Transfer(torch.device("cuda")), threads=4, dtype=None, chunk_bytes=65_536
    ).run()
    for tensor, value in zip(layout.tensors, tensors, strict=True):
        assert value.cpu().view(torch.int16).equal(expected[tensor.name].view(torch.int16)), tensor.name
