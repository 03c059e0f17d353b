"""The text an LLM (or a person) reads: the encoder's logits searched together with a caption language model.

The decoder reads the per-position argmax text, which is word salad to a small LLM. ``head.lm_fusion``
(``model.text_head.fuse_with_lm``) picks instead the word sequence that best fits the encoder's logits
and a trigram model of the embedded world's captions. It costs the decoder 19-70% in loss (dev,
``benchmarks/dev_fusion/lm_fusion.md``), so the decoder keeps the argmax text; for the shipped
SmolLM2-135M the fused text is the better context (dev: mean of 0-shot VQA, 3-shot VQA and 5-way
1-shot classification 0.328 -> 0.461 at weight 0.2; ``benchmarks/dev_fusion/RULE.md``).
"""
from __future__ import annotations

import torch

from dediffusion.model.autoencoder import words_outside_captions

READER_FUSION = 0.2  # head.lm_fusion for LLM contexts, chosen on dev (benchmarks/dev_fusion)


def fusion_fits(model) -> bool:
    """Whether the caption language model covers the encoder's words (the embedded world's vocabulary)."""
    return not words_outside_captions(model)


def reader_weight(model, fusion: float | None) -> float:
    """``fusion`` as given (0 turns it off), or the default: READER_FUSION where the caption LM fits, else 0."""
    if fusion is None:
        return READER_FUSION if fusion_fits(model) else 0.0
    if fusion < 0:
        raise ValueError(f"--fusion {fusion}: the language model's weight must be >= 0")
    if fusion and not fusion_fits(model):
        raise ValueError(f"--fusion {fusion}: the caption language model knows only the embedded world's words; "
                         "this encoder writes others (use --fusion 0)")
    return fusion


@torch.inference_mode()
def reader_texts(model, images: torch.Tensor, fusion: float | None = None) -> list[str]:
    """Texts of ``images`` (B,3,H,W) for a reader: fused with the caption LM at ``reader_weight``."""
    weight, before = reader_weight(model, fusion), model.cfg.head.lm_fusion
    model.set_inference(lm_fusion=weight)
    try:
        return model.texts(images)
    finally:
        model.set_inference(lm_fusion=before)
