"""Stores: where entries are kept (a local directory, a Modal Volume, a Volume seen from a laptop)."""
