"""The embedded world: procedurally generated, captioned scenes.

No captioned image set exists offline, so dediffusion ships its own world in
which the whole method runs for real. A scene is 1-3 flat shapes on a flat
background, each object in its own cell of a 2x2 grid. Every scene keeps its
ground-truth attributes so that an attribute probe can judge reconstructions.

Scenes are a pure function of ``(seed, index)``: training uses one seed, the
held-out evaluation another, so the two sets never overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (235, 205, 30)}
BACKGROUNDS = {"black": (15, 15, 15), "white": (240, 240, 240), "gray": (128, 128, 128)}
SIZES = ("small", "large")
CELLS = ("top left", "top right", "bottom left", "bottom right")  # 2x2 grid, row-major
RESOLUTION = 16  # pixels per side: what the built-in decoder affords on 2 CPU cores
SIZE_FRACTION = {"small": 0.55, "large": 0.95}  # object extent as a fraction of its cell
_SUPERSAMPLE = 4  # anti-aliasing factor for rendering


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    cell: int  # index into CELLS
    offset: tuple[float, float] = (0.0, 0.0)  # jitter in pixels (dx, dy)


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[SceneObject, ...]  # sorted by cell


def sample_scene(seed: int, index: int) -> Scene:
    """Scene number ``index`` of the stream ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(index)])
    n_objects = int(rng.integers(1, 4))
    cells = sorted(rng.choice(len(CELLS), size=n_objects, replace=False).tolist())
    objects = tuple(
        SceneObject(
            shape=SHAPES[rng.integers(len(SHAPES))],
            colour=list(COLOURS)[rng.integers(len(COLOURS))],
            size=SIZES[rng.integers(len(SIZES))],
            cell=int(c),
            offset=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        )
        for c in cells
    )
    return Scene(background=list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))], objects=objects)


def _shape_mask(shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        s = r * 0.85  # equal area-ish with the circle
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "triangle":  # upward, apex at the top
        inside_y = (dy >= -r) & (dy <= r)
        half_width = (dy + r) / 2.0  # 0 at the apex, r at the base
        return inside_y & (np.abs(dx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, resolution: int = RESOLUTION) -> np.ndarray:
    """Render to an (H, W, 3) uint8 array, anti-aliased by supersampling."""
    hi = resolution * _SUPERSAMPLE
    coords = (np.arange(hi) + 0.5) / _SUPERSAMPLE  # pixel units
    xs, ys = np.meshgrid(coords, coords)  # (hi, hi)
    img = np.empty((hi, hi, 3), dtype=np.float32)
    img[:] = BACKGROUNDS[scene.background]
    cell = resolution / 2
    for obj in scene.objects:
        row, col = divmod(obj.cell, 2)
        cx = (col + 0.5) * cell + obj.offset[0] * resolution / 32
        cy = (row + 0.5) * cell + obj.offset[1] * resolution / 32
        r = SIZE_FRACTION[obj.size] * cell / 2
        img[_shape_mask(obj.shape, xs, ys, cx, cy, r)] = COLOURS[obj.colour]
    img = img.reshape(resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def human_caption(scene: Scene) -> str:
    """Names the objects (colour and shape) only, as a COCO caption would.

    Position, size and background are left out: human captions are not
    comprehensive, which is the gap De-Diffusion text closes (paper, Sec. 4.1).
    """
    return " and ".join([f"a {o.colour} {o.shape}" for o in scene.objects])


def full_caption(scene: Scene) -> str:
    """States every attribute: the upper-bound reference."""
    objs = [f"a {o.size} {o.colour} {o.shape} at the {CELLS[o.cell]}" for o in scene.objects]
    return f"{' and '.join(objs)} on a {scene.background} background"


def web_caption(scene: Scene, rng: np.random.Generator, p_mention: float = 0.5) -> str:
    """Alt-text-like: a random subset of the attributes, in varied order.

    Every attribute is mentioned in about ``p_mention`` of the captions so the
    decoder learns the words for all of them.
    """
    phrases = []
    for o in rng.permutation(len(scene.objects)):
        o = scene.objects[o]
        words = [w for w, keep in ((o.size, rng.random() < p_mention), (o.colour, rng.random() < p_mention)) if keep]
        noun = " ".join(words + [o.shape])
        if rng.random() < p_mention:
            where = CELLS[o.cell]
            noun = f"{noun} at the {where}" if rng.random() < 0.5 else f"at the {where} a {noun}"
            phrases.append(noun if noun.startswith("at") else f"a {noun}")
        else:
            phrases.append(f"a {noun}")
    text = " and ".join(phrases)
    if rng.random() < p_mention:
        bg = scene.background
        text = f"{text} on a {bg} background" if rng.random() < 0.5 else f"a {bg} background with {text}"
    return text


FUNCTION_WORDS = ("a", "and", "at", "the", "on", "with")


def tag_caption(scene: Scene, rng: np.random.Generator, p_mention: float = 1.0) -> str:
    """A tag list without function words, objects in random order: "large red circle top right black background".

    Each attribute is kept with probability ``p_mention`` (1.0: every attribute, the full caption's words).
    """
    tags = []
    for i in rng.permutation(len(scene.objects)):
        o = scene.objects[i]
        words = [w for w in (o.size, o.colour) if rng.random() < p_mention] + [o.shape]
        if rng.random() < p_mention:
            words += CELLS[o.cell].split()
        tags.append(words)
    if rng.random() < p_mention:
        tags.insert(int(rng.integers(len(tags) + 1)), [scene.background, "background"])
    return " ".join(w for phrase in tags for w in phrase)


def corrupt(text: str, rng: np.random.Generator, p_drop: float = 0.1, p_repeat: float = 0.1,
            p_stray: float = 0.05) -> str:
    """Encoder-like noise on a caption: words dropped, repeated once, or preceded by a stray vocabulary word.

    Every operation is per word and independent; a text is never emptied (its first word survives a drop
    of all words).
    """
    words, vocab, out = text.split(), vocabulary_words(), []
    for w in words:
        if rng.random() < p_stray:
            out.append(vocab[rng.integers(len(vocab))])
        if rng.random() >= p_drop:
            out.append(w)
            if rng.random() < p_repeat:
                out.append(w)
    return " ".join(out) if out else (words[0] if words else "")


def noisy_caption(scene: Scene, rng: np.random.Generator, p_mention: float = 0.6) -> str:
    """A caption as an encoder might write it (issue 13, item 2): what the decoder should still read.

    Half are tag lists without function words, half web captions; then words are dropped, repeated and
    stray vocabulary words inserted (``corrupt``). Phrase order is already varied by both generators.
    """
    text = tag_caption(scene, rng, p_mention) if rng.random() < 0.5 else web_caption(scene, rng, p_mention)
    return corrupt(text, rng)


def vocabulary_words() -> list[str]:
    """Every word any caption of this world can use (the decoder's training words)."""
    cells = (w for cell in CELLS for w in cell.split())
    return sorted({*FUNCTION_WORDS, "background", *SHAPES, *COLOURS, *BACKGROUNDS, *SIZES, *cells})


def caption_ngrams(order: int, n: int, seed: int = 0, captions=(full_caption,), wrap: bool = False):
    """Every ``order`` consecutive words of the ``captions`` (caption functions) of ``n`` scenes of ``seed``;
    with ``wrap`` each caption runs on into its own start, as a text that ends one caption and begins the next."""
    for k in range(n):
        scene = sample_scene(seed, k)
        for caption in captions:
            words = caption(scene).split()
            ext = words + words[: order - 1] if wrap else words
            yield from zip(*(ext[i:] for i in range(order)))


def caption_word_pairs(n: int, seed: int = 0, captions=(full_caption,), wrap: bool = False):
    """Every consecutive word pair of the ``captions``; with ``wrap`` also each caption's (last word, first word)."""
    return caption_ngrams(2, n, seed, captions, wrap)


def caption_trigrams(words: list[str], n: int = 4000, seed: int = 0, wrap: bool = False,
                     strength: float = 1.0, smoothing: float = 0.1) -> np.ndarray:
    """log P(word | two previous words) (A, A, A) from the full captions of ``n`` training scenes.

    Interpolated counts (Dirichlet smoothing of ``strength`` pseudo-counts at each order): the trigram
    backs off to the bigram, the bigram to the unigram, the unigram to add-``smoothing`` counts. A context
    the captions never use falls back to the lower order, so a word they never use ("with") stays
    expensive after itself too ("with with with" is no cheap filler), and a caption-like context that
    goes somewhere captions never go ("background a gray" after "a gray background") costs far more
    than under a bigram table. The language model of ``head.lm_fusion`` (``model.text_head.fuse_with_lm``).
    """
    index, a_ = {w: i for i, w in enumerate(words)}, len(words)
    counts = np.zeros((a_,) * 3)
    for a, b, c in caption_ngrams(3, n, seed, wrap=wrap):
        if a in index and b in index and c in index:
            counts[index[a], index[b], index[c]] += 1
    unigram = counts.sum((0, 1)) + smoothing
    unigram /= unigram.sum()
    pairs = counts.sum(0)  # (A, A): (b, c)
    bigram = (pairs + strength * unigram) / (pairs.sum(-1, keepdims=True) + strength)
    return np.log((counts + strength * bigram[None]) / (counts.sum(-1, keepdims=True) + strength))


def caption_starts(words: list[str], n: int = 4000, seed: int = 0, smoothing: float = 0.1) -> np.ndarray:
    """log P(a caption opens with words i, j) (A, A) from the full captions of ``n`` training scenes
    (add-``smoothing`` counts): the start of the language model of ``head.lm_fusion``."""
    index = {w: i for i, w in enumerate(words)}
    counts = np.full((len(words),) * 2, smoothing)
    for k in range(n):
        first = full_caption(sample_scene(seed, k)).split()[:2]
        if all(w in index for w in first):
            counts[index[first[0]], index[first[1]]] += 1
    return np.log(counts / counts.sum())


def caption_bigrams(words: list[str], n: int = 4000, seed: int = 0, smoothing: float = 0.1,
                    wrap: bool = False) -> np.ndarray:
    """log P(next word | word) (len(words), len(words)) from the full captions of ``n`` training scenes.

    Add-``smoothing`` counts over ``words`` (pairs with a word outside ``words`` are skipped), so word
    salad such as "left left" gets a low but finite probability. The readability prior of
    ``head.bigram_weight`` (``model.text_head.bigram_nll``). ``wrap`` (``head.bigram_wrap``) adds each
    caption's (last, first) pair, so "background" is followed by "a" rather than by anything at all.
    """
    index = {w: i for i, w in enumerate(words)}
    counts = np.full((len(words), len(words)), smoothing)
    for a, b in caption_word_pairs(n, seed, wrap=wrap):
        if a in index and b in index:
            counts[index[a], index[b]] += 1
    return np.log(counts / counts.sum(1, keepdims=True))
