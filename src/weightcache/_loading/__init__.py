"""The GPU loading path behind ``weightcache.torch``: safetensors parsing, host buffers, device copies."""
