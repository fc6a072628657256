"""Find clothing in a photo and cut each item out: GroundingDINO boxes it, SAM-2 masks it.

Plain Python that runs anywhere torch does (CPU here, CUDA on Modal): no Modal, no HTTP.
SAM-2's inputs are prepared by hand (resize, ImageNet normalisation, box scaling) because
transformers' ``Sam2Processor`` needs torchvision, which we do not want to depend on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoProcessor,
    GroundingDinoForObjectDetection,
    GroundingDinoProcessor,
    PreTrainedTokenizerBase,
    Sam2Model,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DUPLICATE_IOU = 0.7  # two boxes overlapping this much are one item found twice


@dataclass(frozen=True)
class DetectedItem:
    """One item found: the category it matched, the detector's score, its box and the cut-out.

    ``box`` is ``(x0, y0, x1, y1)`` in pixels of the input image; ``cutout`` is an RGBA image
    of the box, transparent wherever SAM-2's mask says "not this item".
    """

    label: str
    score: float
    box: tuple[int, int, int, int]
    cutout: Image.Image


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class FashionCropper:
    """GroundingDINO (text-prompted boxes) followed by SAM-2 (a mask per box).

    ``FashionCropper.load(detector_dir, segmenter_dir)`` loads both from local directories in
    transformers' layout (``config.json``, ``model.safetensors``, processor files).
    """

    def __init__(
        self,
        processor: GroundingDinoProcessor,
        detector: GroundingDinoForObjectDetection,
        segmenter: Sam2Model,
        device: str,
    ) -> None:
        self.processor = processor
        self.detector = detector
        self.segmenter = segmenter
        self.device = device

    @classmethod
    def load(
        cls,
        detector_dir: str | os.PathLike[str],
        segmenter_dir: str | os.PathLike[str],
        device: str | None = None,
    ) -> FashionCropper:
        """Load both models from local directories (nothing is downloaded)."""
        device = device or default_device()
        processor = AutoProcessor.from_pretrained(Path(detector_dir), local_files_only=True)
        detector = GroundingDinoForObjectDetection.from_pretrained(Path(detector_dir), local_files_only=True)
        segmenter = Sam2Model.from_pretrained(Path(segmenter_dir), local_files_only=True)
        return cls(processor, detector.to(device).eval(), segmenter.to(device).eval(), device)

    def crop(
        self, image: Image.Image, categories: list[str], *, box_threshold: float = 0.35, max_items: int = 10
    ) -> list[DetectedItem]:
        """Every item of ``categories`` found in ``image``, best score first, at most ``max_items``."""
        image = image.convert("RGB")
        labels, scores, boxes = self._detect(image, categories, box_threshold, max_items)
        if not labels:
            return []
        masks = self._segment(image, boxes)
        return [
            DetectedItem(label, score, box, cut_out(image, mask, box))
            for label, score, box, mask in zip(
                labels, scores, _pixel_boxes(boxes, image.size), masks, strict=True
            )
        ]

    @torch.inference_mode()
    def _detect(
        self, image: Image.Image, categories: list[str], box_threshold: float, max_items: int
    ) -> tuple[list[str], list[float], torch.Tensor]:
        prompt, spans = grounding_prompt(categories)
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.device)
        token_spans = _token_spans(self.processor.tokenizer, prompt, spans)
        outputs = self.detector(**inputs)
        probs = outputs.logits[0].sigmoid()  # (queries, text tokens)
        per_category = torch.stack(
            [probs[:, start:end].max(dim=1).values for start, end in token_spans], dim=1
        )
        scores, category_ids = per_category.max(dim=1)
        boxes = _corners(outputs.pred_boxes[0]) * torch.tensor([*image.size, *image.size], device=self.device)
        keep = _keep(boxes, scores, box_threshold)[:max_items]
        labels = [categories[i] for i in category_ids[keep].tolist()]
        return labels, scores[keep].tolist(), boxes[keep]

    @torch.inference_mode()
    def _segment(self, image: Image.Image, boxes: torch.Tensor) -> np.ndarray:
        size = self.segmenter.config.prompt_encoder_config.image_size
        width, height = image.size
        pixel_values = sam_pixel_values(image, size).to(self.device)
        scale = torch.tensor([size / width, size / height, size / width, size / height], device=self.device)
        outputs = self.segmenter(
            pixel_values=pixel_values, input_boxes=(boxes * scale)[None], multimask_output=False
        )
        low_res = outputs.pred_masks[0, :, :1].float()  # (boxes, 1, h, w) logits
        masks = F.interpolate(low_res, (height, width), mode="bilinear", align_corners=False)[:, 0] > 0
        return masks.cpu().numpy()


def grounding_prompt(categories: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """GroundingDINO's prompt (``"shirt. jeans."``) and each category's character span in it."""
    prompt, spans = "", []
    for category in categories:
        start = len(prompt)
        prompt += category.strip().lower()
        spans.append((start, len(prompt)))
        prompt += ". "
    return prompt.strip(), spans


def _token_spans(
    tokenizer: PreTrainedTokenizerBase, prompt: str, spans: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Turn character spans into token index ranges, through the tokenizer's offsets."""
    offsets = tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    token_spans = []
    for start, end in spans:
        tokens = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
        token_spans.append((tokens[0], tokens[-1] + 1))
    return token_spans


def sam_pixel_values(image: Image.Image, size: int) -> torch.Tensor:
    """What ``Sam2Processor`` feeds SAM-2: the image resized to ``size``², scaled to [0, 1], normalised."""
    resized = np.asarray(
        image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    normalised = (resized / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(normalised.astype(np.float32)).permute(2, 0, 1)[None]


def cut_out(image: Image.Image, mask: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    """The box of ``image`` as RGBA, transparent outside ``mask`` (a boolean array of the image's size)."""
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(mask.astype(np.uint8) * 255))
    return rgba.crop(box)


def _corners(center_boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = center_boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _keep(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of boxes over ``threshold``, best first, dropping boxes that repeat a better one."""
    kept: list[int] = []
    for index in scores.argsort(descending=True).tolist():
        if scores[index] <= threshold:
            break
        if all(_iou(boxes[index], boxes[other]) < DUPLICATE_IOU for other in kept):
            kept.append(index)
    return torch.tensor(kept, dtype=torch.long, device=boxes.device)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    width = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
    height = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
    inter = float(width * height)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _pixel_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Round boxes to whole pixels inside the image, at least one pixel wide and high."""
    width, height = size
    pixel_boxes = []
    for x0, y0, x1, y1 in boxes.tolist():
        left, top = min(max(int(x0), 0), width - 1), min(max(int(y0), 0), height - 1)
        right, bottom = max(min(round(x1), width), left + 1), max(min(round(y1), height), top + 1)
        pixel_boxes.append((left, top, right, bottom))
    return pixel_boxes
