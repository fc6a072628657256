"""FakeModalDict keeps modal.Dict's atomic create-if-absent across real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from weightcache.testing import FakeModalDict

RACER = """
import sys, time
from weightcache.testing import FakeModalDict
leases, start_at, me = FakeModalDict(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
while time.time() < start_at:
    time.sleep(0.001)
print(FakeModalDict(sys.argv[1]).put("lease/0", me, skip_if_exists=True))
"""


def test_of_racing_processes_exactly_one_creates_the_key(tmp_path: Path) -> None:
    path = tmp_path / "leases.dict"
    start_at = time.time() + 2.0  # every process started before then
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(start_at), f"racer-{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    created = [racer.communicate(timeout=120)[0].strip() == "True" for racer in racers]
    assert created.count(True) == 1
    assert FakeModalDict(path).get("lease/0") == f"racer-{created.index(True)}"


def test_the_dict_api(tmp_path: Path) -> None:
    leases = FakeModalDict(tmp_path / "d")
    assert leases.get("missing") is None and leases.get("missing", 3) == 3
    assert leases.put("k", {"beat": 1}) is True
    assert leases.put("k", {"beat": 2}, skip_if_exists=True) is False
    assert leases["k"] == {"beat": 1} and "k" in leases and leases.len() == 1
    leases["k"] = {"beat": 3}
    assert FakeModalDict(tmp_path / "d").items() == [("k", {"beat": 3})]  # another handle sees it
    assert leases.pop("k") == {"beat": 3} and leases.pop("k", None) is None
    with pytest.raises(KeyError):
        leases.pop("k")
    with pytest.raises(KeyError):
        leases["k"]
