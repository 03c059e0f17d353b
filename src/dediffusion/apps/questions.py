"""Questions with ground-truth answers about embedded-world scenes, and answer matching.

Five kinds, each answerable from the scene's attributes (``data/world/scenes.py``):

=============  ======================================  ====================
kind           question                                answers
=============  ======================================  ====================
background     What colour is the background?          black / white / gray
count          How many objects are there?             1 / 2 / 3
colour         What colour is the <shape>?             red / green / ...
shape          What shape is the <colour> object?      circle / square / ...
position       Where is the <colour> <shape>?          top left / ...
=============  ======================================  ====================

Colour, shape and position questions are asked only about an object that the
question names unambiguously (its shape, colour or both unique in the scene).

Answer matching (documented in ``benchmarks/vqa.md``): both texts are normalised
(lower case, punctuation dropped, articles dropped, "grey" -> "gray", number words
-> digits). A prediction is correct if it equals the answer, or if the answer is
the *only* one of the kind's possible answers that occurs in it as whole words:
"The circle is red." is correct for "red", "red or blue" is not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from dediffusion.data.world.scenes import BACKGROUNDS, CELLS, COLOURS, SHAPES, Scene

KINDS = ("background", "count", "colour", "shape", "position")
CANDIDATES = {
    "background": tuple(BACKGROUNDS),
    "count": ("1", "2", "3"),
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "position": CELLS,
}
_NUMBERS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}
_SYNONYMS = {"grey": "gray", "color": "colour"}
_DROP = {"a", "an", "the"}


@dataclass(frozen=True)
class Question:
    kind: str
    question: str
    answer: str


def _unique(values: list) -> set:
    return {v for v in values if values.count(v) == 1}


def question_for(scene: Scene, kind: str) -> Question | None:
    """A question of ``kind`` about ``scene``, or None when no object can be named unambiguously."""
    objs = scene.objects
    if kind == "background":
        return Question(kind, "What colour is the background?", scene.background)
    if kind == "count":
        return Question(kind, "How many objects are there?", str(len(objs)))
    if kind == "colour":
        shapes = _unique([o.shape for o in objs])
        o = next((o for o in objs if o.shape in shapes), None)
        return o and Question(kind, f"What colour is the {o.shape}?", o.colour)
    if kind == "shape":
        colours = _unique([o.colour for o in objs])
        o = next((o for o in objs if o.colour in colours), None)
        return o and Question(kind, f"What shape is the {o.colour} object?", o.shape)
    if kind == "position":
        names = _unique([(o.colour, o.shape) for o in objs])
        o = next((o for o in objs if (o.colour, o.shape) in names), None)
        return o and Question(kind, f"Where is the {o.colour} {o.shape}?", CELLS[o.cell])
    raise ValueError(f"unknown question kind {kind!r} (kinds: {', '.join(KINDS)})")


def question_stream(scenes: list[Scene], seed: int) -> list[tuple[int, Question]]:
    """One question per scene, kinds in turn (balanced), (scene index, question) pairs.

    If the scene's turn kind cannot be asked (no unambiguous object), the next kind is used.
    """
    out = []
    offset = int(np.random.default_rng([seed, 7]).integers(len(KINDS)))
    for i, scene in enumerate(scenes):
        for j in range(len(KINDS)):
            q = question_for(scene, KINDS[(i + offset + j) % len(KINDS)])
            if q is not None:
                out.append((i, q))
                break
    return out


def normalise(text: str) -> str:
    words = re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split()
    words = [_NUMBERS.get(w, _SYNONYMS.get(w, w)) for w in words]
    return " ".join(w for w in words if w not in _DROP)


def _contains(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def is_correct(prediction: str, answer: str, candidates: tuple[str, ...]) -> bool:
    """Normalised exact match, or the answer is the only candidate contained in the prediction."""
    pred, gold = normalise(prediction), normalise(answer)
    if pred == gold:
        return True
    found = {c for c in map(normalise, candidates) if _contains(pred, c)}
    return found == {gold}
