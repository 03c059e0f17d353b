"""Tiny random-config Stable Diffusion pipelines and vision backbones, saved the way the real ones are.

Nothing downloads: every model is built from a config (diffusers' own test recipe), with the real
49,408-token CLIP tokenizer shipped by dediffusion.
"""
from __future__ import annotations

import pathlib

import torch

IMAGE = 16  # pixels; the VAE halves it once: 8x8 latents


def save_tiny_sd(folder, prediction_type: str = "epsilon", pad_token: str | None = None,
                 scaling_factor: float = 0.5, seed: int = 0) -> pathlib.Path:
    """A diffusers-layout SD folder (unet, vae, text_encoder, tokenizer, scheduler, model_index.json).

    ``pad_token="!"`` mimics SD 2.x, whose tokenizer pads with '!' (id 0) after EOS.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dediffusion.model.tokenizer import clip_tokenizer

    folder = pathlib.Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=IMAGE // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
        norm_num_groups=4, sample_size=IMAGE, scaling_factor=scaling_factor)
    from importlib import resources

    bpe = resources.files("dediffusion") / "assets" / "clip_bpe"
    tokenizer = CLIPTokenizer(str(bpe / "vocab.json"), str(bpe / "merges.txt"), model_max_length=77,
                              **({"pad_token": pad_token} if pad_token else {}))
    assert len(tokenizer) == len(clip_tokenizer()) == 49408
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=tokenizer.pad_token_id))
    scheduler = PNDMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False, prediction_type=prediction_type)  # as SD ships it
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    # the tokenizer folder as SD 1.x/2.x ship it: vocab.json + merges.txt (transformers 5 writes tokenizer.json)
    (folder / "tokenizer" / "tokenizer.json").unlink()
    for name in ("vocab.json", "merges.txt"):
        (folder / "tokenizer" / name).write_bytes((bpe / name).read_bytes())
    return folder


def _processor(kind: str, side: int):
    from transformers import BitImageProcessor, CLIPImageProcessor, SiglipImageProcessor, ViTImageProcessor

    if kind == "clip":
        return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    if kind == "siglip":
        return SiglipImageProcessor(size={"height": side, "width": side})
    if kind == "dinov2":  # resize to 8/7 of the crop, then centre-crop (DINOv2's 256 -> 224)
        return BitImageProcessor(size={"shortest_edge": side * 8 // 7}, crop_size={"height": side, "width": side},
                                 do_center_crop=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    return ViTImageProcessor(size={"height": side, "width": side})


def save_tiny_vision(folder, kind: str, full: bool = False, side: int = 28, seed: int = 0) -> pathlib.Path:
    """A tiny random ``clip`` / ``siglip`` / ``dinov2`` / ``vit`` vision model + its preprocessor config.

    ``full=True`` saves a whole CLIP model (text tower included), as openai/clip-vit-* checkpoints are.
    """
    import transformers as tf

    folder = pathlib.Path(folder)
    torch.manual_seed(seed)
    common = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=side, patch_size=7)
    if kind == "clip" and full:
        model = tf.CLIPModel(tf.CLIPConfig(
            text_config=dict(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, max_position_embeddings=16, bos_token_id=0,
                             eos_token_id=1, pad_token_id=1),
            vision_config=common, projection_dim=8))
    elif kind == "clip":
        model = tf.CLIPVisionModel(tf.CLIPVisionConfig(**common))
    elif kind == "siglip":
        model = tf.SiglipVisionModel(tf.SiglipVisionConfig(**common))
    elif kind == "dinov2":
        model = tf.Dinov2Model(tf.Dinov2Config(**common))
    elif kind == "vit":
        model = tf.ViTModel(tf.ViTConfig(**common), add_pooling_layer=False)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder, safe_serialization=True)
    _processor(kind, side).save_pretrained(folder)
    return folder
