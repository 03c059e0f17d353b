"""The Gumbel text head: pooled queries -> vocabulary logits -> (soft) tokens.

Paper, Sec. 3: a linear layer projects each query to the vocabulary of the
decoder's text encoder (punctuation and special tokens excluded); Gumbel-softmax
relaxes the choice so that gradients reach the encoder; the temperature is
annealed exponentially from 2.0 to 0.3 over training. At inference the text is
the argmax token at every position.

Masking is done by construction: the head's output columns are the allowed
token ids only, which is exactly a softmax over the full vocabulary with the
excluded logits at -inf, at a fraction of the cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TextHeadConfig:
    vocab: str = "words"  # "words" (paper: punctuation removed), "all" (kept) or "allow_list"
    tau_start: float = 2.0  # paper, Sec. 3
    tau_end: float = 0.3
    anneal: bool = True  # False: fixed tau_start (ablation)
    estimator: str = "soft"  # "soft" Gumbel-softmax samples or "straight_through" (hard forward)
    noise_scale: float = 1.0  # Gumbel noise multiplier; 0 with straight_through: the forward is the argmax text
    noise_anneal: bool = False  # scale the noise by tau / tau_start: late training optimises the argmax text itself
    diversity_weight: float = 0.0  # weight of batch_sameness: wav2vec 2.0's codebook-diversity loss (not in the paper)
    inference: str = "argmax"  # "argmax" (paper) or "sample": one seeded draw from softmax(logits / T)
    sample_temperature: float = 0.5  # T for inference="sample"
    sample_seed: int = 0  # the same Gumbel noise for every image: texts depend on the image only
    inference_tokens: int = 0  # emit the first K tokens (0: all); a TailDrop-trained encoder serves any K
    adaptive_length: bool = False  # inference: each text the prefix of its K tokens the decoder picks (model/synthesis.py)
    logit_scale: float = 1.0  # multiplies the head's logits; >1 lets them reach near one-hot sharpness quickly
    bigram_weight: float = 0.0  # weight of bigram_nll under a caption bigram table (readability; world decoder only)
    bigram_wrap: bool = False  # the table also counts each caption's last word -> its first: a text may end and restart a caption
    lm_fusion: float = 0.0  # inference: weight of a caption trigram LM in a Viterbi search over the logits (0: per position; world only)


def temperature(step: int, total: int, cfg: TextHeadConfig) -> float:
    """Exponential annealing tau_start -> tau_end over ``total`` steps."""
    if not cfg.anneal or total <= 1:
        return cfg.tau_start
    frac = min(1.0, step / (total - 1))
    return cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac


def gumbel_noise(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise (float32) drawn from ``generator``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float32).to(device)
    return -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, generator: torch.Generator | None = None,
                   noise_scale: float = 1.0) -> torch.Tensor:
    """Gumbel-softmax samples over the last dim, with an explicit generator (reproducible)."""
    g = gumbel_noise(logits.shape, generator, logits.device) * noise_scale
    y = F.softmax((logits.float() + g) / tau, dim=-1)
    if hard:
        index = y.argmax(-1, keepdim=True)
        y_hard = torch.zeros_like(y).scatter_(-1, index, 1.0)
        y = y_hard - y.detach() + y  # straight-through
    return y.to(logits.dtype)


def collision_rate(logits: torch.Tensor) -> torch.Tensor:
    """Expected fraction of position pairs that emit the same token, per image (B,); logged as ``repeat``.

    Small decoders reward repeating one informative word at every position (a
    soft mixture repeated N times is a continuous code, not text).
    """
    p = logits.float().softmax(-1)  # (B,N,A)
    n = p.shape[1]
    total = p.sum(1)  # (B,A)
    same = (total * total).sum(-1) - (p * p).sum((1, 2))  # sum over i != j of p_i . p_j
    return same / (n * (n - 1))


def batch_sameness(logits: torch.Tensor) -> torch.Tensor:
    """1 - normalised entropy of the batch-averaged token distribution, averaged over positions ().

    wav2vec 2.0 (Baevski et al. 2020) adds this to its Gumbel quantiser so that
    codes are used evenly. Here it is 0 when every position spreads its choices
    over the whole vocabulary across the images of a batch, and 1 when all
    images get the same token: the collapse to one text for every image.
    """
    p = logits.float().softmax(-1).mean(0)  # (N,A)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)  # (N,)
    return 1 - entropy.mean() / math.log(logits.shape[-1])


def bigram_nll(weights: torch.Tensor, log_bigram: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per consecutive word pair under a bigram table ().

    ``weights`` (B, N, A): (relaxed) one-hot words, e.g. the straight-through samples the decoder reads
    (hard in the forward pass, so the value is the emitted text's own). ``log_bigram`` (A, A): log
    P(next word j | word i), e.g. counted on captions. Low for texts whose word pairs occur in captions,
    high for word salad ("left left left"); the gradient reaches the logits through the relaxation.
    """
    pairs = torch.einsum("bti,ij,btj->bt", weights[:, :-1].float(), log_bigram.float(), weights[:, 1:].float())
    return -pairs.mean()


def fuse_with_lm(log_probs: torch.Tensor, log_trigram: torch.Tensor, weight: float,
                 log_start: torch.Tensor | None = None) -> torch.Tensor:
    """The word sequence (B, N) of indices into the A words that maximises
    ``sum_t log_probs[t, w_t] + weight * (log_start[w_0, w_1] + sum_{t>=2} log_trigram[w_{t-2}, w_{t-1}, w_t])``,
    exactly (Viterbi over the (previous, current) word pairs: N x A^3 per text); without ``log_start``
    (A, A) the first two words are free.

    ``log_probs`` (B, N, A): the encoder's per-position log-probabilities; ``log_trigram`` (A, A, A): log
    P(k | i, j) of a language model. ``weight`` 0 is the per-position argmax; larger weights trade the
    encoder's choices for word sequences the language model finds likely (shallow fusion, as in speech
    recognition with an external LM).
    """
    b, n, a = log_probs.shape
    lp, lm = log_probs.float(), weight * log_trigram.float()
    if n < 3 or weight == 0:
        return lp.argmax(-1)
    score = lp[:, 0, :, None] + lp[:, 1, None, :]  # (B, A_prev, A_cur) after two words
    if log_start is not None:
        score = score + weight * log_start.float()[None]
    back = []
    for t in range(2, n):
        best, arg = (score[:, :, :, None] + lm[None]).max(1)  # over the word before the previous one
        back.append(arg)  # (B, A_prev, A_cur): the best w_{t-2} for (w_{t-1}, w_t)
        score = best + lp[:, t, None, :]
    flat = score.reshape(b, -1).argmax(-1)
    prev, cur = flat // a, flat % a
    rows, out = torch.arange(b), [cur, prev]
    for arg in reversed(back):
        prev, cur = arg[rows, prev, cur], prev
        out.append(prev)
    return torch.stack(out[::-1], 1)


class TextHead(nn.Module):
    """(B, N, width) -> logits (B, N, A) over the A allowed token ids."""

    def __init__(self, width: int, allowed_ids: torch.Tensor, cfg: TextHeadConfig = TextHeadConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("allowed_ids", allowed_ids.long().clone())  # (A,)
        self.proj = nn.Linear(width, len(allowed_ids))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h) * self.cfg.logit_scale  # (B,N,A)

    def choice(self, logits: torch.Tensor) -> torch.Tensor:
        """Index into the allowed ids (B, N) of the inference-time token at every position.

        ``argmax`` is the paper's choice. ``sample`` draws each token from
        softmax(logits / T) with Gumbel noise fixed by ``sample_seed`` and shared
        by all images, so a text depends on its image only (not on the batch).
        Small decoders trained briefly end with flat per-position distributions
        whose argmax repeats one word while draws from them carry the image.
        """
        if self.cfg.inference == "argmax":
            return logits.argmax(-1)
        if self.cfg.inference != "sample":
            raise ValueError(f"unknown inference {self.cfg.inference!r}; expected 'argmax' or 'sample'")
        gen = torch.Generator().manual_seed(self.cfg.sample_seed)
        g = gumbel_noise(logits.shape[-2:], gen, logits.device)  # (N,A), shared by all images
        return (logits.float() / self.cfg.sample_temperature + g).argmax(-1)

    def hard_ids(self, logits: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids of the inference-time tokens (B, N) (the argmax by default)."""
        return self.allowed_ids[self.choice(logits)]

    def one_hot(self, logits: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.choice(logits), logits.shape[-1]).to(logits.dtype)

    def sample(self, logits: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Relaxed one-hot samples (B, N, A) for training (hard in the forward pass with ``straight_through``)."""
        hard = self.cfg.estimator == "straight_through"
        scale = self.cfg.noise_scale * (tau / self.cfg.tau_start if self.cfg.noise_anneal else 1.0)
        return gumbel_softmax(logits, tau, hard=hard, generator=generator, noise_scale=scale)

    def embed(self, weights: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
        """(Soft) one-hot (B,N,A) x the decoder's embedding rows (A,D) -> token vectors (B,N,D)."""
        return weights @ token_embedding[self.allowed_ids].to(weights.dtype)
