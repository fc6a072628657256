"""The Hugging Face cache: a read view of ``~/.cache/huggingface/hub`` and adopting it into a store."""
