"""fashion_crop: cut clothing out of photos with GroundingDINO and SAM-2, served on Modal (see README.md)."""
