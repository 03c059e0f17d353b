"""The text an LLM (or a person) reads: a caption written from the encoder's logits and checked by the decoder.

The decoder reads the per-position argmax text, which is word salad to a small LLM. The reader (1) searches
the logits together with a trigram model of the embedded world's captions (``head.lm_fusion``,
``model.text_head.fuse_with_lm``, starting as captions start), (2) reads the words it finds with the
world's caption grammar (``mentions``: colour + shape, with size and cell where given, and the first
background), then lets the frozen decoder pick (analysis by synthesis, ``decoder_pick``; ``decoder_steps``)
(3) each object's cell among the world's four (``check_attribute``: the text often gives none), (4) how many
of the objects to keep (``choose_count``: the caption of the first k under which the decoder denoises the
image best) and (5) each object's shape (the encoder never writes "square").

Chosen on dev (``benchmarks/dev_reader/RULE.md``; SmolLM2-135M, 200 questions, 50 episodes): 0-shot VQA,
3-shot VQA, 5-way 1-shot classification 0.485 / 0.455 / 0.340 with the fused text (1) alone -> 0.565 /
0.485 / 0.600 with (2), (4) -> 0.550 / 0.500 / 0.900 with (5). The fused text costs the decoder 19-70% in
loss (``benchmarks/dev_fusion/lm_fusion.md``), so the decoder keeps the argmax text.
The decoder's picks score candidates by the error of the implied noise estimate over t in [50, 999]
(``benchmarks/dev_pick_eps``: dev classification unchanged at 0.900, 3-shot 0.480 -> 0.525; single-object colour +
shape 0.848 -> 0.920).
Checking each object's cell before its shape: ``benchmarks/dev_reader_cells``.
(6) ``layout``: the kept objects are written as the world's caption or as short sentences ("There are two
objects. A large red circle at the top right. ...", ``benchmarks/dev_reader_style``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SHAPES, SIZES
from dediffusion.model.autoencoder import words_outside_captions
from dediffusion.model.synthesis import decoder_pick

READER_FUSION = 0.2  # head.lm_fusion for LLM contexts, chosen on dev (benchmarks/dev_fusion)
READER_LAYOUT = "sentences"  # how the reader writes what it keeps (LAYOUTS); chosen on dev (dev_reader_style)
CHECKED = {"cell": CELLS, "shape": SHAPES}  # attributes the decoder can pick, and their values
READER_STEPS = ("cell", "count", "shape")  # the decoder's picks, in order (dev_reader, dev_reader_cells)
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


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


@dataclass(frozen=True)
class Mention:
    """One object as a fused text names it: colour and shape, size and cell where the text gives them."""
    colour: str
    shape: str
    size: str | None = None
    cell: str | None = None

    def phrase(self) -> str:
        words = ["a", self.size, self.colour, self.shape] + (["at", "the", self.cell] if self.cell else [])
        return " ".join(w for w in words if w)


Read = tuple[list[Mention], str | None]  # what a text names: its objects and its background colour


def merged(objects: list[Mention]) -> list[Mention]:
    """``objects`` with repeats of one object merged, in order: same colour and shape, and either lacks a
    cell or the cells agree; the merged one keeps any size and cell either gives."""
    out: list[Mention] = []
    for m in objects:
        j = next((j for j, o in enumerate(out) if (o.colour, o.shape) == (m.colour, m.shape)
                  and (o.cell is None or m.cell is None or o.cell == m.cell)), None)
        if j is None:
            out.append(m)
        else:
            out[j] = replace(out[j], size=out[j].size or m.size, cell=out[j].cell or m.cell)
    return out


def mentions(words: list[str]) -> tuple[list[Mention], str | None]:
    """The objects a fused text names (with the world's caption grammar; repeats of one object merged),
    in order, and its first background colour."""
    found, background = every_mention(words)
    return merged(found), background


def every_mention(words: list[str]) -> tuple[list[Mention], str | None]:
    """``mentions`` without the merge: every colour + shape mention in order, and the first background."""
    found, background = [], None
    for i, w in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else None
        if w in BACKGROUNDS and after == "background":
            background = background or w
        elif w in COLOURS and after in SHAPES:
            size = words[i - 1] if i and words[i - 1] in SIZES else None
            where = " ".join(words[i + 4:i + 6]) if words[i + 2:i + 4] == ["at", "the"] else None
            found.append(Mention(w, after, size, where if where in CELLS else None))
    return found, background


def caption(objects: list[Mention], background: str | None) -> str:
    """A full caption of ``objects`` on ``background`` (either may be missing)."""
    text = " and ".join(o.phrase() for o in objects)
    return f"{text} on a {background} background".strip() if background else text


def sentences(objects: list[Mention], background: str | None) -> str:
    """``objects`` on ``background`` as short sentences, the count first: "There are two objects. A large red
    circle at the top right. A blue square. The background is gray." (a 135M LLM reads these best)."""
    n = len(objects)
    count = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    lines = [f"There {'is' if n == 1 else 'are'} {count} object{'' if n == 1 else 's'}."]
    lines += [o.phrase().capitalize() + "." for o in objects]  # phrases are lower case
    lines += [f"The background is {background}."] if background else []
    return " ".join(lines)


LAYOUTS = {"caption": caption, "sentences": sentences}


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (layouts: {', '.join(LAYOUTS)})")
    return layout


def captions_by_count(objects: list[Mention], background: str | None) -> list[str]:
    """Captions of the first k ``objects`` on ``background``, k = 1 .. all."""
    return [caption(objects[:k], background) for k in range(1, len(objects) + 1)]


def check_attribute(decoder, images: torch.Tensor, read: list[Read], attribute: str) -> list[Read]:
    """``read`` ((objects, background) per image) after the decoder picks each object's ``attribute`` (CHECKED:
    "cell" or "shape") among the world's values, objects in turn; objects that then repeat are merged. The
    decoder's candidates are captions (what it was trained on); ``read`` itself is not changed."""
    values = CHECKED[attribute]
    read = [(list(objects), background) for objects, background in read]
    for i in range(max((len(o) for o, _ in read), default=0)):
        todo = [j for j, (o, _) in enumerate(read) if len(o) > i]
        options = [[replace(read[j][0][i], **{attribute: v}) for v in values] for j in todo]
        texts = [[caption(read[j][0][:i] + [m] + read[j][0][i + 1:], read[j][1]) for m in ms]
                 for j, ms in zip(todo, options)]
        for j, ms, k in zip(todo, options, decoder_pick(decoder, images[todo], texts)):
            read[j][0][i] = ms[k]
    return [(merged(o), b) for o, b in read]


def choose_count(decoder, images: torch.Tensor, read: list[Read]) -> list[Read]:
    """``read`` with each image's objects cut to the first k, k picked by the decoder among 1 .. all."""
    options = [captions_by_count(o, b) or [""] for o, b in read]
    ks = [i + 1 for i in decoder_pick(decoder, images, options)]
    return [(o[:k], b) for (o, b), k in zip(read, ks)]


def decoder_steps(decoder, images: torch.Tensor, read: list[Read], steps: tuple[str, ...] = READER_STEPS,
                  checker=None) -> list[Read]:
    """``read`` after the decoder's picks in order (READER_STEPS): "count" (``choose_count``) or an attribute of
    CHECKED (``check_attribute``, by ``checker`` where given: ``--shape-decoder``)."""
    for step in steps:
        if step == "count":
            read = choose_count(decoder, images, read)
        elif step in CHECKED:
            read = check_attribute(checker if checker is not None else decoder, images, read, step)
        else:
            raise ValueError(f"unknown reader step {step!r} (steps: count, {', '.join(CHECKED)})")
    return read


def load_shape_decoder(folder, fusion: float):
    """The decoder that checks the reader's cells and shapes (``--shape-decoder``): a built-in decoder folder that
    knows the world's shape words; only meaningful when the reader writes captions (``fusion`` > 0)."""
    from dediffusion.model.decoders import load_decoder

    if not fusion:
        raise ValueError("--shape-decoder checks the shapes of the reader's caption; it needs --fusion > 0")
    decoder = load_decoder(folder)
    if getattr(decoder, "kind", "") != "builtin":
        raise ValueError(f"--shape-decoder {folder}: not a built-in decoder (a Stable Diffusion decoder cannot "
                         "tell the embedded world's shapes at its resolution)")
    unk = getattr(decoder.tokenizer, "unk_token_id", None)
    if unk is not None and any(unk in ids for ids in decoder.tokenize(list(SHAPES))):
        raise ValueError(f"--shape-decoder {folder}: its vocabulary lacks the world's shape words")
    return decoder.eval()


def fused_texts(model, images: torch.Tensor, weight: float) -> list[str]:
    """The encoder's texts of ``images`` searched with the caption LM at ``weight`` (0: the argmax text)."""
    before = model.cfg.head.lm_fusion
    model.set_inference(lm_fusion=weight)
    try:
        return model.texts(images)
    finally:
        model.set_inference(lm_fusion=before)


def read_objects(model, images: torch.Tensor, weight: float, choose: bool = True) -> tuple[list[str], list[Read]]:
    """The fused texts of ``images`` and what each names, cut to the first k objects the decoder chooses
    (``choose``; else all of them)."""
    fused = fused_texts(model, images, weight)
    read = [mentions(t.split()) for t in fused]
    return fused, choose_count(model.decoder, images, read) if choose else read


@torch.inference_mode()
def reader_texts(model, images: torch.Tensor, fusion: float | None = None, steps: tuple[str, ...] = READER_STEPS,
                 shape_decoder=None, layout: str = READER_LAYOUT) -> list[str]:
    """Texts of ``images`` (B,3,H,W) in [0, 1] for a reader (``fusion`` 0: the decoder's argmax text).

    With fusion: the logits searched with the caption LM at ``reader_weight`` and read as the objects they
    name, then the decoder's ``steps`` (``decoder_steps``: each object's cell, how many to keep, each shape;
    ``()``: none), attributes checked by ``shape_decoder`` where given (``load_shape_decoder``; e.g. the second
    built-in decoder, ``benchmarks/dev_shapecheck_b``), written in ``layout`` (LAYOUTS). A text that names no
    object is kept as it is.
    """
    weight, write = reader_weight(model, fusion), LAYOUTS[check_layout(layout)]
    if not weight:
        return fused_texts(model, images, 0.0)
    fused, read = read_objects(model, images, weight, choose=False)
    read = decoder_steps(model.decoder, images, read, steps, shape_decoder)
    return [write(o, b) if o else f for (o, b), f in zip(read, fused)]


class ReaderModel:
    """A model whose ``texts`` are the reader's at ``fusion`` (``encode --fusion``): what the bulk encoders take."""

    def __init__(self, model, fusion: float | None = None, layout: str = READER_LAYOUT):
        self.model, self.fusion, self.layout = model, reader_weight(model, fusion), check_layout(layout)

    def to(self, device) -> "ReaderModel":
        self.model.to(device)
        return self

    def texts(self, images: torch.Tensor) -> list[str]:
        return reader_texts(self.model, images, self.fusion, layout=self.layout)
