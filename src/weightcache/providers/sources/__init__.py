"""Sources: where the bytes come from (``hf://``, ``https://``, ``dir://``), one module each."""
