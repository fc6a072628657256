"""A local package the apps add with ``add_local_python_source``: it must be importable in the container."""

GREETING = "hello from the image"
