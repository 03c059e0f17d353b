"""Prompt builders: an image's text as the context block of an LLM prompt.

The paper (Sec. 4.2, Table 1) prompts a frozen LLM with the image's De-Diffusion
text as context, the instruction "Answer the question given the context." and
k few-shot examples, each with its own image text, question and answer. The paper
gives no verbatim template; the layout below is ours: the instruction once, then
one block per example and the query block last, blocks separated by a blank line::

    Answer the question given the context.

    Image context: <example 1 text>
    Question: <example 1 question>
    Short answer: <example 1 answer>

    Image context: <query text>
    Question: <query question>
    Short answer:

Captioning and open-ended few-shot classification (paper, Sec. 4.3, Table 3) use
the same block layout with their own instruction and answer field.

Zero-shot questions go to instruct models as chat messages instead (``answer_messages``,
rendered with the model's own chat template): a system message that says what the
context is and asks for a short phrase, the question as the user turn. A small
instruct model given the completion prompt above with no examples writes sentences
("The answer is:" and a line break, which the newline stop cut to nothing).
``extract_answer`` reduces any reply to its answer phrase.
"""
from __future__ import annotations

import json
import pathlib
import re
from dataclasses import dataclass

VQA_INSTRUCTION = "Answer the question given the context."  # paper, Sec. 4.2
CAPTION_INSTRUCTION = "Write a short caption for the image given the context."
CLASSIFY_INSTRUCTION = "Name the class of the image given the context."
CONTEXT_NOTE = ("You answer questions about an image from its context, a terse, possibly noisy description of it "
                "(De-Diffusion text).")
ANSWER_SYSTEM = CONTEXT_NOTE + " Reply with only the answer: one to three words, not a sentence.\nContext: {context}"
CHAT_SYSTEM = ("You are talking with a user about an image you cannot see. " + CONTEXT_NOTE +
               " Answer in one short sentence, in your own words; do not repeat the context. "
               "Say so when the context does not tell.\nContext: {context}")


@dataclass(frozen=True)
class Example:
    """One few-shot example: an image's text, a question about it and the answer."""

    context: str
    question: str
    answer: str


def _block(context: str, question: str | None, field: str, answer: str | None) -> str:
    lines = [f"Image context: {context.strip()}".rstrip()]
    if question is not None:
        lines.append(f"Question: {question.strip()}")
    lines.append(f"{field}: {answer.strip()}" if answer is not None else f"{field}:")
    return "\n".join(lines)


def _prompt(instruction: str, field: str, shots: list[tuple], context: str, question: str | None = None) -> str:
    """The instruction, one block per ``(context, question, answer)`` shot, then the query's block."""
    blocks = [_block(c, q, field, a) for c, q, a in shots] + [_block(context, question, field, None)]
    return "\n\n".join([instruction, *blocks])


def vqa_prompt(context: str, question: str, shots: list[Example] = ()) -> str:
    """Few-shot VQA prompt; the LLM continues after the last ``Short answer:``."""
    if not question.strip():
        raise ValueError("empty question")
    return _prompt(VQA_INSTRUCTION, "Short answer", [(s.context, s.question, s.answer) for s in shots], context,
                   question)


def caption_prompt(context: str, shots: list[tuple[str, str]] = ()) -> str:
    """Few-shot captioning: ``shots`` are (image text, caption) pairs."""
    return _prompt(CAPTION_INSTRUCTION, "Caption", [(c, None, cap) for c, cap in shots], context)


def classification_prompt(context: str, shots: list[tuple[str, str]], induction: bool = True) -> str:
    """Open-ended k-shot classification: ``shots`` are (image text, label) pairs.

    With ``induction`` the instruction names the labels to choose from (the paper's
    "task induction", Table 3), in order of first appearance among the shots.
    """
    instruction = CLASSIFY_INSTRUCTION
    if induction:
        labels = list(dict.fromkeys(label for _, label in shots))
        instruction += " Answer with one of: " + ", ".join(labels) + "."
    return _prompt(instruction, "Class", [(c, None, label) for c, label in shots], context)


def answer_messages(context: str, question: str) -> list[dict]:
    """Zero-shot VQA for an instruct model: the context in the system message, the question as the user turn.

    Roles alternate, as strict chat templates require. With the context in the user turn
    instead, SmolLM2-135M restated the context more often (20 world questions, full caption:
    0.35-0.50 correct vs 0.60 here; noisy).
    """
    if not question.strip():
        raise ValueError("empty question")
    return [{"role": "system", "content": ANSWER_SYSTEM.format(context=context.strip() or "(empty)")},
            {"role": "user", "content": question.strip()}]


def chat_messages(context: str, turns: list[tuple[str, str]], question: str) -> list[dict]:
    """Chat seeded with the image text: system message, earlier (user, assistant) turns, new question."""
    messages = [{"role": "system", "content": CHAT_SYSTEM.format(context=context.strip() or "(empty)")}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": question})
    return messages


def first_line(completion: str) -> str:
    """The answer part of a completion: its first non-empty line, stripped."""
    return next((line.strip() for line in completion.splitlines() if line.strip()), "")


_ANSWER_IS = re.compile(r"(?:\b(?:the|my) )?(?:\b(?:short|final) )?\banswer(?: is\b\s*:?|\s*:)", re.I)
_RESTATED = re.compile(r"^(?:the|it|there|this|that)\b(?: [\w-]+){0,3}? (?:is|are|appears to be|seems to be)"
                       r"(?: (?:located|found))? ", re.I)
_SENTENCE_END = re.compile(r"(?<=[A-Za-z0-9)])[.!?](?=\s|$)")
_CLAUSE_END = re.compile(r"[,;](?=\s)")  # not ":", which more often ends a label ("Colour: red")


def first_sentence(reply: str) -> str:
    """The first sentence of a reply's first non-empty line (chat keeps replies short)."""
    line = first_line(reply)
    end = _SENTENCE_END.search(line)
    return line[: end.end()] if end else line


def extract_answer(reply: str) -> str:
    """The answer phrase of an LLM reply; "" if it holds none.

    1. Markdown emphasis and quotes go. 2. After "the answer is" / "Answer:" only what
    follows is kept (the last lead-in with text after it, else the text before the first).
    3. The first non-empty line, up to its first sentence or clause end (. ! ? , ;).
    4. A restated subject goes ("The background is white" -> "white", "There are 3
    objects" -> "3 objects", "The red circle is located at the top left" -> "at the top
    left"). 5. Surrounding punctuation goes. A bare "The answer is:" gives "".
    """
    text = re.sub(r"[*_`\"]+", "", reply)
    pieces = _ANSWER_IS.split(text)  # [before the first lead-in, after the first, after the second, ...]
    if len(pieces) > 1:
        text = next((p for p in pieces[:0:-1] + pieces[:1] if p.strip(" \t\n.,;:")), "")
    phrase = _CLAUSE_END.split(_SENTENCE_END.split(first_line(text), maxsplit=1)[0], maxsplit=1)[0]
    rest = _RESTATED.sub("", phrase, count=1)
    if rest.strip(" .,;:"):
        phrase = rest
    return phrase.strip(" \t.,;:!?'")


def load_shots(path) -> list[Example]:
    """Few-shot examples from a JSON-lines file: ``{"context": ..., "question": ..., "answer": ...}`` per line.

    ``"text"`` is accepted for ``"context"``; blank lines are skipped. Errors name the file and line.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such shots file")
    shots = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object")
        context = row.get("context", row.get("text"))
        fields = {"context": context, "question": row.get("question"), "answer": row.get("answer")}
        missing = [k for k, v in fields.items() if not isinstance(v, str)]
        if missing:
            raise ValueError(f"{path}:{n}: missing string field(s) {', '.join(missing)}")
        shots.append(Example(**fields))
    return shots
