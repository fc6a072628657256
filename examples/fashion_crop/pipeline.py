"""Find clothing in a photo and cut each item out: GroundingDINO boxes it, SAM-2 masks it.

Plain Python that runs anywhere torch does (CPU here, CUDA on Modal): no Modal, no HTTP.
SAM-2's inputs are prepared by hand (resize, ImageNet normalisation, box scaling) because
transformers' ``Sam2Processor`` needs torchvision, which we do not want to depend on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Sam2Model,
)

from examples.loading import load_transformers_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DUPLICATE_IOU = 0.7  # two boxes overlapping this much are one item found twice
SEGMENT_CHUNK = 16  # boxes through SAM-2's mask decoder at once


@dataclass(frozen=True)
class MaskRules:
    """Which masks become items: SAM-2's predicted quality (IoU, 0-1) of the best of its three
    masks at least ``min_score``, and an area of at least ``min_area`` of the image (0.3 %)."""

    min_score: float = 0.5
    min_area: float = 0.003


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
    transformers' layout (``config.json``, ``model.safetensors``, processor files). ``loaders``
    says which loader read each model's weights: ``weightcache`` or ``library``.
    """

    def __init__(
        self,
        processor: GroundingDinoProcessor,
        detector: GroundingDinoForObjectDetection,
        segmenter: Sam2Model,
        device: str,
        loaders: dict[str, str] | None = None,
    ) -> None:
        self.processor = processor
        self.detector = detector
        self.segmenter = segmenter
        self.device = device
        self.loaders = loaders or {}

    @classmethod
    def load(
        cls,
        detector_dir: str | os.PathLike[str],
        segmenter_dir: str | os.PathLike[str],
        device: str | None = None,
    ) -> FashionCropper:
        """Load both models from local directories (nothing is downloaded).

        Their weights go straight to ``device`` through ``weightcache.torch.load_safetensors``
        (``examples/loading.py``), or through transformers when ``EXAMPLES_WEIGHTS_LOADER=library``
        or the layout is not the expected one.
        """
        device = device or default_device()
        processor = AutoProcessor.from_pretrained(Path(detector_dir), local_files_only=True)
        detector, detector_loader = load_model(GroundingDinoForObjectDetection, Path(detector_dir), device)
        segmenter, segmenter_loader = load_model(Sam2Model, Path(segmenter_dir), device)
        loaders = {"detector": detector_loader, "segmenter": segmenter_loader}
        return cls(processor, detector.to(device).eval(), segmenter.to(device).eval(), device, loaders)

    def to(self, device: str) -> FashionCropper:
        """Move both models to ``device`` (after a memory snapshot restored them on the CPU)."""
        self.detector.to(device)
        self.segmenter.to(device)
        self.device = device
        return self

    def crop(
        self,
        image: Image.Image,
        categories: list[str],
        *,
        box_threshold: float = 0.35,
        max_items: int = 10,
        rules: MaskRules | None = None,
    ) -> list[DetectedItem]:
        """Every item of ``categories`` found in ``image``, best score first, at most ``max_items``.

        Each box gets the best of SAM-2's three masks; a box whose mask scores under
        ``rules.min_score`` or covers under ``rules.min_area`` of the image is dropped.
        """
        image, rules = image.convert("RGB"), rules or MaskRules()
        labels, scores, boxes = self._detect(image, categories, box_threshold, max_items)
        if not labels:
            return []
        pixel_boxes = _pixel_boxes(boxes, image.size)
        min_pixels = rules.min_area * image.width * image.height
        items = []
        for start, masks in self._segment(image, boxes):
            for offset, (logits, mask_score) in enumerate(masks):
                index = start + offset
                mask = box_mask(logits, pixel_boxes[index], image.size)
                if mask_score < rules.min_score or mask.sum() < min_pixels:
                    continue
                items.append(
                    DetectedItem(
                        labels[index],
                        scores[index],
                        pixel_boxes[index],
                        cut_out(image, mask, pixel_boxes[index]),
                    )
                )
        return items

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
    def _segment(
        self, image: Image.Image, boxes: torch.Tensor
    ) -> Iterator[tuple[int, list[tuple[torch.Tensor, float]]]]:
        """For each chunk of boxes: its first index, and per box the best mask's low-res logits and score.

        The image is embedded once; the boxes go through the mask decoder ``SEGMENT_CHUNK`` at a
        time, so memory per request stays bounded however many boxes there are.
        """
        size = self.segmenter.config.prompt_encoder_config.image_size
        width, height = image.size
        embeddings = self.segmenter.get_image_embeddings(sam_pixel_values(image, size).to(self.device))
        scale = torch.tensor([size / width, size / height, size / width, size / height], device=self.device)
        for start in range(0, len(boxes), SEGMENT_CHUNK):
            chunk = boxes[start : start + SEGMENT_CHUNK] * scale
            outputs = self.segmenter(
                image_embeddings=embeddings, input_boxes=chunk[None], multimask_output=True
            )
            masks, mask_scores = outputs.pred_masks[0], outputs.iou_scores[0]  # (boxes, 3, h, w), (boxes, 3)
            best = mask_scores.argmax(dim=1)
            yield (
                start,
                [
                    (masks[i, choice].float().cpu(), float(mask_scores[i, choice]))
                    for i, choice in enumerate(best.tolist())
                ],
            )


def load_model(model_class: type[PreTrainedModel], folder: Path, device: str) -> tuple[PreTrainedModel, str]:
    """One model from ``folder`` and the loader that read it: ``weightcache`` onto ``device``,
    else ``library`` (transformers' ``from_pretrained``, on the CPU; the caller moves it)."""
    model = load_transformers_model(model_class, folder, device)
    if model is not None:
        return model, "weightcache"
    return model_class.from_pretrained(folder, local_files_only=True), "library"


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


def box_mask(logits: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """SAM-2's low-res mask ``logits`` for the whole image, upsampled inside ``box`` only, as booleans.

    The same values as upsampling to the image's ``size`` (bilinear, as transformers does) and
    cropping, without ever holding a full-resolution float mask.
    """
    left, top, right, bottom = box
    width, height = size
    xs = (torch.arange(left, right, dtype=torch.float32) + 0.5) / width * 2 - 1
    ys = (torch.arange(top, bottom, dtype=torch.float32) + 0.5) / height * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, h, w, 2) as (x, y)
    sampled = F.grid_sample(
        logits[None, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return (sampled[0, 0] > 0).numpy()


def cut_out(image: Image.Image, mask: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    """The box of ``image`` as RGBA, transparent outside ``mask`` (a boolean array of the box's size)."""
    rgba = image.crop(box).convert("RGBA")
    rgba.putalpha(Image.fromarray(mask.astype(np.uint8) * 255))
    return rgba


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
