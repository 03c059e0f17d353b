"""Prompt builders produce the documented layout exactly; shots files and answer matching behave."""
import pytest

from dediffusion.apps.prompts import (
    Example,
    caption_prompt,
    chat_messages,
    classification_prompt,
    first_line,
    load_shots,
    vqa_prompt,
)
from dediffusion.apps.questions import CANDIDATES, KINDS, is_correct, normalise, question_for, question_stream
from dediffusion.world.data import scenes
from dediffusion.world.scenes import CELLS, Scene, SceneObject


def test_vqa_prompt_zero_shot_exact():
    assert vqa_prompt(" red red red ", "What colour is the circle?") == (
        "Answer the question given the context.\n\n"
        "Image context: red red red\n"
        "Question: What colour is the circle?\n"
        "Short answer:")


def test_vqa_prompt_few_shot_exact_and_ordered():
    shots = [Example("a blue square", "What shape is it?", "square"), Example("", "How many?", "2")]
    assert vqa_prompt("a red circle", "What colour?", shots) == (
        "Answer the question given the context.\n\n"
        "Image context: a blue square\nQuestion: What shape is it?\nShort answer: square\n\n"
        "Image context:\nQuestion: How many?\nShort answer: 2\n\n"
        "Image context: a red circle\nQuestion: What colour?\nShort answer:")


def test_vqa_prompt_rejects_empty_question():
    with pytest.raises(ValueError, match="empty question"):
        vqa_prompt("text", "  ")


def test_caption_prompt_exact():
    assert caption_prompt("red red", [("blue blue", "a blue square")]) == (
        "Write a short caption for the image given the context.\n\n"
        "Image context: blue blue\nCaption: a blue square\n\n"
        "Image context: red red\nCaption:")


def test_classification_prompt_with_and_without_task_induction():
    shots = [("t1", "red circle"), ("t2", "blue square"), ("t3", "red circle")]
    body = ("Image context: t1\nClass: red circle\n\nImage context: t2\nClass: blue square\n\n"
            "Image context: t3\nClass: red circle\n\nImage context: q\nClass:")
    assert classification_prompt("q", shots) == (
        "Name the class of the image given the context. Answer with one of: red circle, blue square.\n\n" + body)
    assert classification_prompt("q", shots, induction=False) == (
        "Name the class of the image given the context.\n\n" + body)


def test_chat_messages_seed_the_image_text_and_keep_turns():
    msgs = chat_messages("a red circle", [("what colour?", "red")], "what shape?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert "a red circle" in msgs[0]["content"]
    assert msgs[1:] == [{"role": "user", "content": "what colour?"}, {"role": "assistant", "content": "red"},
                        {"role": "user", "content": "what shape?"}]


def test_first_line():
    assert first_line("\n  red \nblue") == "red"
    assert first_line("   ") == ""


def test_load_shots(tmp_path):
    good = tmp_path / "shots.jsonl"
    good.write_text('{"context": "a", "question": "q?", "answer": "x"}\n\n{"text": "b", "question": "r?", "answer": "y"}\n')
    assert load_shots(good) == [Example("a", "q?", "x"), Example("b", "r?", "y")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "a", "question": "q?", "answer": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        load_shots(bad)
    bad.write_text('{"context": "a", "question": "q?"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing string field\(s\) answer"):
        load_shots(bad)
    with pytest.raises(ValueError, match="no such shots file"):
        load_shots(tmp_path / "missing.jsonl")


def test_answer_matching():
    colours = CANDIDATES["colour"]
    assert is_correct("Red.", "red", colours)
    assert is_correct("The circle is red", "red", colours)
    assert not is_correct("red or blue", "red", colours)
    assert not is_correct("reddish", "red", colours)
    assert is_correct("There are three objects.", "3", CANDIDATES["count"])
    assert is_correct("grey", "gray", CANDIDATES["background"])
    assert is_correct("at the top left", "top left", CELLS)
    assert not is_correct("top", "top left", CELLS)
    assert not is_correct("top left and bottom right", "top left", CELLS)
    assert normalise("The Top-Left!") == "top left"


def test_questions_are_true_of_the_scene():
    scene = Scene("black", (SceneObject("circle", "red", "small", 0), SceneObject("circle", "blue", "large", 3),
                            SceneObject("square", "red", "small", 1)))
    assert question_for(scene, "background").answer == "black"
    assert question_for(scene, "count").answer == "3"
    colour = question_for(scene, "colour")  # only the square's shape is unique
    assert (colour.question, colour.answer) == ("What colour is the square?", "red")
    shape = question_for(scene, "shape")  # only blue is unique
    assert (shape.question, shape.answer) == ("What shape is the blue object?", "circle")
    assert question_for(scene, "position").answer == "top left"
    twins = Scene("white", (SceneObject("circle", "red", "small", 0), SceneObject("circle", "red", "large", 1)))
    assert question_for(twins, "colour") is None and question_for(twins, "position") is None


def test_question_stream_is_deterministic_and_covers_all_kinds():
    batch = scenes(1, 0, 50)
    stream = question_stream(batch, 1)
    assert stream == question_stream(batch, 1)
    assert {q.kind for _, q in stream} == set(KINDS)
    for i, q in stream:
        assert q.answer in CANDIDATES[q.kind]
        assert question_for(batch[i], q.kind) == q
