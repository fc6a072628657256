"""A Modal app that imports fine where it is deployed and crashes in its container.

In the container Modal mounts this file at ``/root/crashing_app.py`` (modal/_utils/function_utils.py,
the FILE branch of ``get_entrypoint_mount``), so ``parents[2]`` is past the filesystem root there.
"""

from pathlib import Path

import modal

REPO = Path(__file__).resolve().parents[2]  # the checkout, two levels up: only on the deploying machine

image = modal.Image.debian_slim(python_version="3.11").add_local_python_source("weightcache")
app = modal.App("crashing-app", image=image)


@app.function()
@modal.fastapi_endpoint()
def hello() -> dict[str, str]:
    """Never served: the module does not import in the container."""
    return {"repo": str(REPO)}
