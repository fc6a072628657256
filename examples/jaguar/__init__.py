"""jaguar: shuttle-jaguar text-to-image with diffusers' FluxPipeline, served on Modal (see README.md)."""
