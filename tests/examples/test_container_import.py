"""Each app.py imports the way its Modal container imports it.

In the container Modal mounts the entrypoint file as ``/root/app.py`` (modal 1.6,
``_utils/function_utils.py``, the FILE branch) and the image's ``add_local_python_source``
packages beside it, and ``modal.is_local()`` is false. Here the app's source runs with
``__file__ = "/root/app.py"`` in a fresh process whose only import path is a scratch
directory holding copies of ``examples`` and ``weightcache``, as the image lays them out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_python

REPO = Path(__file__).resolve().parents[2]
CONTAINER_IMPORT = """
import json, sys, types
import modal
modal.is_local = lambda: False  # what a running Function sees
module = types.ModuleType("app")
module.__file__ = "/root/app.py"
sys.modules["app"] = module
exec(compile(open(sys.argv[1]).read(), "/root/app.py", "exec"), module.__dict__)
import examples, weightcache
print(json.dumps({
    "app": module.app.name,
    "class": module.__dict__[sys.argv[2]]._get_user_cls().__name__,
    "packages": [examples.__file__, weightcache.__file__],
}))
"""


@pytest.fixture(scope="module")
def container_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's add_local_python_source("weightcache", "examples") layers, laid out as in /root."""
    root = tmp_path_factory.mktemp("root")
    ignore = shutil.ignore_patterns("__pycache__", "data")
    shutil.copytree(REPO / "examples", root / "examples", ignore=ignore)
    shutil.copytree(REPO / "src/weightcache", root / "weightcache", ignore=ignore)
    return root


@pytest.mark.parametrize(
    ("app_file", "cls", "name"),
    [
        ("examples/jaguar/app.py", "ShuttleJaguarModel", "shuttle-jaguar"),
        ("examples/fashion_crop/app.py", "FashionCrop", "fashion-crop-api"),
    ],
)
def test_app_imports_in_the_container_as_root_app_py(
    container_root: Path, app_file: str, cls: str, name: str
) -> None:
    # The image's environment: what app.py carried from the deploying machine (the defaults).
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(container_root),
        "PYTHONPATH": str(container_root),
        "FASHION_CROP_WEIGHTS": "image",
        "EXAMPLES_WEIGHTS_LOADER": "weightcache",
        "EXAMPLES_MEMORY_SNAPSHOT": "0",
    }

    done = run_python(CONTAINER_IMPORT, str(REPO / app_file), cls, env=env, cwd=container_root)

    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.splitlines()[-1])
    assert (imported["app"], imported["class"]) == (name, cls)
    assert all(Path(path).is_relative_to(container_root) for path in imported["packages"])
