"""The Modal app modules import under the real ``modal`` SDK (no token, no network) and declare
the GPU, the Volume mount and the web endpoint intended, as ``modal deploy`` would import them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import run_python

REPO = Path(__file__).resolve().parents[2]

# Import app.py by path as `modal deploy examples/<app>/app.py` does (cwd = repo root), then
# print what its web endpoint's function declares.
INSPECT = """
import importlib.util, json, os, sys
os.chdir(sys.argv[1]); sys.path.insert(0, "")
spec = importlib.util.spec_from_file_location("app", sys.argv[2])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
from modal._partial_function import _find_partial_methods_for_user_cls, _PartialFunctionFlags
cls = getattr(module, sys.argv[3])
info = cls().web.info()
partials = _find_partial_methods_for_user_cls(cls._get_user_cls(), _PartialFunctionFlags.WEB_INTERFACE)
snap = _find_partial_methods_for_user_cls(cls._get_user_cls(), _PartialFunctionFlags.ENTER_PRE_SNAPSHOT)
print(json.dumps({
    "app": module.app.name,
    "gpus": [list(gpu) for gpu in info.gpus],
    "volumes": {path: mount.name for path, mount in info.volumes.items()},
    "web": {name: [web.method, partials[name].params.webhook_config.requested_suffix]
            for name, web in info.method_details.items()},
    "before_snapshot": sorted(snap),
    "timeout": info.timeout,
    "startup_timeout": info.startup_timeout,
    "min_containers": module.MIN_CONTAINERS,
    "scaledown_window": module.SCALEDOWN_WINDOW,
}))
"""


def inspect_app(app_file: str, cls: str, env: dict[str, str] | None = None) -> dict:
    done = run_python(
        f"import os; os.environ.update({env or {}!r})\n" + INSPECT, str(REPO), str(REPO / app_file), cls
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_fashion_crop_app_declares_gpu_volume_and_web_endpoint(tmp_path: Path) -> None:
    baked = tmp_path / "weights"
    baked.mkdir()

    declared = inspect_app(
        "examples/fashion_crop/app.py", "FashionCrop", {"FASHION_CROP_WEIGHTS_DIR": str(baked)}
    )

    assert declared == {
        "app": "fashion-crop-api",
        "gpus": [["A10G", 1]],
        "volumes": {"/cache": "fashion-model-weights"},
        "web": {"fastapi_app": [None, "fashion-crop-api-fastapi-app"], "web": [None, ""]},
        "before_snapshot": [],
        "timeout": 300,
        "startup_timeout": 900,
        "min_containers": 0,
        "scaledown_window": 60,
    }


def test_fashion_crop_hub_mode_needs_no_local_weights() -> None:
    declared = inspect_app(
        "examples/fashion_crop/app.py",
        "FashionCrop",
        {"FASHION_CROP_WEIGHTS": "hub", "FASHION_CROP_WEIGHTS_DIR": "/nonexistent"},
    )

    assert declared["volumes"] == {"/cache": "fashion-model-weights"}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FASHION_CROP_WEIGHTS_DIR": "/nonexistent"}, "/nonexistent does not exist: run"),
        ({"FASHION_CROP_WEIGHTS": "s3"}, "FASHION_CROP_WEIGHTS is 's3'; set it to image or hub"),
        (
            {"FASHION_CROP_WEIGHTS": "hub", "EXAMPLES_WEIGHTS_LOADER": "fast"},
            "EXAMPLES_WEIGHTS_LOADER is 'fast'; set it to weightcache or library",
        ),
    ],
)
def test_fashion_crop_deploy_stops_with_one_line_when_misconfigured(env: dict[str, str], says: str) -> None:
    done = run_python(
        f"import os; os.environ.update({env!r})\n" + INSPECT,
        str(REPO),
        str(REPO / "examples/fashion_crop/app.py"),
        "FashionCrop",
    )

    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(says)


def test_jaguar_app_declares_gpu_volume_and_web_endpoints() -> None:
    declared = inspect_app("examples/jaguar/app.py", "ShuttleJaguarModel")

    assert declared == {
        "app": "shuttle-jaguar",
        "gpus": [["L40S", 1]],
        "volumes": {"/cache": "jaguar-model-weights"},
        "web": {
            "web": [None, ""],
            "generate_api": ["GET", ""],
            "batch_api": ["POST", ""],
            "info": ["GET", ""],
            "reload_model": ["POST", ""],
        },
        "before_snapshot": [],
        "timeout": 1800,
        "startup_timeout": 1800,
        "min_containers": 0,
        "scaledown_window": 60,
    }


def test_jaguar_deploy_stops_with_one_line_for_an_unknown_loader() -> None:
    done = run_python(
        "import os; os.environ['EXAMPLES_WEIGHTS_LOADER'] = 'fast'\n" + INSPECT,
        str(REPO),
        str(REPO / "examples/jaguar/app.py"),
        "ShuttleJaguarModel",
    )

    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "EXAMPLES_WEIGHTS_LOADER is 'fast'; set it to weightcache or library"
    )


def modal_label(app: str, cls: str, method: str) -> str:
    """The label Modal gives a web method without ``label=``: ``<app>-<class>-<method>``, lowercased,
    ``_`` as ``-`` (facts checked against modal's ``_partial_function.py``; the server derives it)."""
    return f"{app}-{cls}-{method}".lower().replace("_", "-")


def test_the_seed_urls_are_where_modal_puts_these_endpoints() -> None:
    jaguar = inspect_app("examples/jaguar/app.py", "ShuttleJaguarModel")
    fashion = inspect_app("examples/fashion_crop/app.py", "FashionCrop", {"FASHION_CROP_WEIGHTS": "hub"})

    seed_labels = {
        name: modal_label(jaguar["app"], "ShuttleJaguarModel", name)
        for name, (_, label) in jaguar["web"].items()
        if name != "web" and label == ""
    }

    assert seed_labels == {
        "generate_api": "shuttle-jaguar-shuttlejaguarmodel-generate-api",
        "batch_api": "shuttle-jaguar-shuttlejaguarmodel-batch-api",
        "info": "shuttle-jaguar-shuttlejaguarmodel-info",
        "reload_model": "shuttle-jaguar-shuttlejaguarmodel-reload-model",
    }
    assert fashion["web"]["fastapi_app"][1] == "fashion-crop-api-fastapi-app"


@pytest.mark.parametrize(
    ("app_file", "cls", "env"),
    [
        ("examples/jaguar/app.py", "ShuttleJaguarModel", {}),
        ("examples/fashion_crop/app.py", "FashionCrop", {"FASHION_CROP_WEIGHTS": "hub"}),
    ],
)
def test_memory_snapshots_move_the_preparation_before_the_snapshot(
    app_file: str, cls: str, env: dict[str, str]
) -> None:
    declared = inspect_app(app_file, cls, {**env, "EXAMPLES_MEMORY_SNAPSHOT": "1"})
    refused = run_python(
        f"import os; os.environ.update({{**{env!r}, 'EXAMPLES_MEMORY_SNAPSHOT': 'yes'}})\n" + INSPECT,
        str(REPO),
        str(REPO / app_file),
        cls,
    )

    assert declared["before_snapshot"] == ["prepare"]
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == "EXAMPLES_MEMORY_SNAPSHOT is 'yes'; set it to 1 or 0"


def test_readmes_push_exactly_the_sources_the_apps_ensure() -> None:
    from examples.fashion_crop.weights import DETECTOR, SEGMENTER, hub_source
    from examples.jaguar.weights import jaguar_source

    fashion_readme = (REPO / "examples/fashion_crop/README.md").read_text()
    jaguar_readme = (REPO / "examples/jaguar/README.md").read_text()

    for model in (DETECTOR, SEGMENTER):
        assert (
            f'weightcache push "{hub_source(model).uri}" --modal-volume fashion-model-weights'
            in fashion_readme
        )
    assert f'weightcache push "{jaguar_source().uri}" --modal-volume jaguar-model-weights' in jaguar_readme
