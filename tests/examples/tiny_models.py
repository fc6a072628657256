"""Tiny random-weight models of the examples' architectures, built offline from configs.

Each is saved with ``save_pretrained`` in the real repositories' layout (under 1 MB), so the
examples load them with the same code as the real weights. Their outputs are noise, but of the
right shapes and types: the tests check plumbing, not model quality.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import (
    BertConfig,
    BertTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoProcessor,
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2MaskDecoderConfig,
    Sam2Model,
    Sam2PromptEncoderConfig,
    Sam2VisionConfig,
    SwinConfig,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)
from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
    GroundingDinoImageProcessorPil,
)

WORDS = [
    "shirt",
    "t",
    "-",
    "jeans",
    "dress",
    "skirt",
    "jacket",
    "shoes",
    "hat",
    "bag",
    "pants",
    "red",
    "blue",
]
SAM_IMAGE_SIZE = 128


def save_grounding_dino(folder: Path) -> Path:
    """A ~180K-parameter GroundingDINO (Swin-T backbone, BERT text encoder) with its processor."""
    torch.manual_seed(0)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(vocab)})
    backbone = SwinConfig(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=7,
        image_size=98,
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        num_queries=12,
        max_text_len=128,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 98, "longest_edge": 160})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_sam2(folder: Path) -> Path:
    """A ~220K-parameter SAM-2 (Hiera backbone) taking 128x128 inputs."""
    torch.manual_seed(0)
    backbone = Sam2HieraDetConfig(
        hidden_size=12,
        image_size=[SAM_IMAGE_SIZE, SAM_IMAGE_SIZE],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[8, 4, 4, 2],
        global_attention_blocks=[3],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[96, 48, 24, 12],
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=32, image_size=SAM_IMAGE_SIZE, patch_size=16
        ),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    Sam2Model(config).save_pretrained(folder)
    return folder


def save_flux(folder: Path) -> Path:
    """A FluxPipeline in diffusers' layout (diffusers' own test sizes): 8x8 latents, under 1 MB."""
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=1000,
            projection_dim=32,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, decoder_start_token_id=0
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=CLIPTokenizer(vocab=_clip_vocab(), merges=[], model_max_length=77),
        text_encoder_2=t5,
        tokenizer_2=T5TokenizerFast(),
        transformer=transformer,
    )
    pipeline.save_pretrained(folder)
    return folder


def tree_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path: what to publish on a fake Hub repository."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


def _clip_vocab() -> dict[str, int]:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits + "!.,'":
        vocab[char] = len(vocab)
        vocab[f"{char}</w>"] = len(vocab)
    return vocab
