"""Pluggable sources (where bytes come from) and stores (where they are kept), one module each."""
