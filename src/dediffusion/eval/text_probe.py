"""A reader-independent check of what a text says: logistic regression from word n-grams to scene attributes.

An LLM's answers mix the text's content with the reader's skill. This check removes the reader: for one
prompt source, a multinomial logistic regression per attribute is fitted from binary word unigram and
bigram features of that source's texts for *dev* scenes to the scenes' attributes, and scored on *test*
scenes (same checks as the attribute probe: background, each cell's content, and each object's colour
and size). A source whose texts carry an attribute in any consistent form scores high.

Also the surface statistics of a text source: the share of emitted words that name a shape, colour,
size or position (``content_word_share``), distinct texts and mean length.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SHAPES, SIZES, Scene, caption_word_pairs, \
    full_caption, human_caption
from dediffusion.eval.probe import targets
from dediffusion.model.attribute_cnn import HEADS as CELL_HEADS

CONTENT_WORDS = frozenset([*SHAPES, *COLOURS, *BACKGROUNDS, *SIZES, *(w for c in CELLS for w in c.split())])
HEADS = {"background": len(BACKGROUNDS), **CELL_HEADS}  # classes per check


def ngrams(text: str) -> set[str]:
    words = text.split()
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


def featurise(texts: list[str], vocab: dict[str, int] | None = None) -> tuple[torch.Tensor, dict[str, int]]:
    """Binary unigram + bigram features (n, V); the vocabulary is built from ``texts`` unless given."""
    grams = [ngrams(t) for t in texts]
    if vocab is None:
        vocab = {g: i for i, g in enumerate(sorted(set().union(*grams)))} if grams else {}
    x = torch.zeros(len(texts), len(vocab) + 1)  # last column: bias
    x[:, -1] = 1
    for i, gs in enumerate(grams):
        for g in gs:
            if g in vocab:
                x[i, vocab[g]] = 1
    return x, vocab


attribute_targets = targets  # the attribute probe's checks: background (n,), per cell (n, 4); -1 = no check


def _fit_head(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, steps: int) -> torch.Tensor:
    """Weights (V, [cells,] classes) of a logistic regression, L-BFGS on mean cross-entropy + l2."""
    cells = 1 if y.dim() == 1 else y.shape[1]
    w = torch.zeros(x.shape[1], cells * classes, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")
    target = y.reshape(len(y), cells)

    def closure():
        opt.zero_grad()
        logits = (x @ w).view(len(x), cells, classes)
        loss = F.cross_entropy(logits.reshape(-1, classes), target.reshape(-1), ignore_index=-1)
        loss = loss + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def text_probe(fit_texts: list[str], fit_scenes: list[Scene], test_texts: list[str], test_scenes: list[Scene],
               l2: float = 1e-3, steps: int = 200) -> dict[str, float]:
    """Test accuracy per attribute and over all checks (micro-average) of regressions fitted on the fit set."""
    torch.manual_seed(0)
    x_fit, vocab = featurise(fit_texts)
    x_test, _ = featurise(test_texts, vocab)
    y_fit, y_test = attribute_targets(fit_scenes), attribute_targets(test_scenes)
    hits, totals = {}, {}
    for k, classes in HEADS.items():
        w = _fit_head(x_fit, y_fit[k], classes, l2, steps)
        cells = 1 if y_test[k].dim() == 1 else y_test[k].shape[1]
        pred = (x_test @ w).view(len(x_test), cells, classes).argmax(-1)
        target = y_test[k].reshape(len(x_test), cells)
        valid = target >= 0
        hits[k], totals[k] = int(((pred == target) & valid).sum()), int(valid.sum())
    acc = {k: hits[k] / totals[k] for k in HEADS}
    acc["all"] = sum(hits.values()) / sum(totals.values())
    return acc


@functools.lru_cache(maxsize=1)
def caption_pairs(n: int = 2000, seed: int = 0) -> frozenset[tuple[str, str]]:
    """Every consecutive word pair of the full and the human-like captions of ``n`` training scenes."""
    return frozenset(caption_word_pairs(n, seed, (full_caption, human_caption)))


def surface_stats(texts: list[str]) -> dict[str, float]:
    """Share of words naming a shape, colour, size or position; distinct texts; mean words per text;
    readability: the share of consecutive word pairs that occur in (full or human-like) captions, and of
    repeated words."""
    words = [w for t in texts for w in t.split()]
    pairs = [p for t in texts for w in [t.split()] for p in zip(w, w[1:])]
    known = caption_pairs()
    return {"content_word_share": sum(w in CONTENT_WORDS for w in words) / max(1, len(words)),
            "distinct_text_fraction": len(set(texts)) / max(1, len(texts)),
            "mean_words": len(words) / max(1, len(texts)),
            "caption_pair_share": sum(p in known for p in pairs) / max(1, len(pairs)),
            "repeat_pair_share": sum(a == b for a, b in pairs) / max(1, len(pairs))}
