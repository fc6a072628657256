"""Example Modal apps built on weightcache: ``fashion_crop`` and ``jaguar`` (see each one's README)."""
