"""Prompt builders produce the documented layout exactly; shots files and answer matching behave."""
import pytest

from dediffusion.apps.llm_prompts import (ANSWER_SYSTEM, Example, answer_messages, caption_prompt, chat_messages,
    classification_prompt, extract_answer, first_line, first_sentence, load_shots, vqa_prompt)
from dediffusion.apps.questions import CANDIDATES, KINDS, is_correct, normalise, question_for, question_stream
from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import CELLS, Scene, SceneObject


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
    system = msgs[0]["content"]
    assert system.endswith("\nContext: a red circle") and "terse, possibly noisy description" in system
    assert "one short sentence" in system and "do not repeat the context" in system
    assert msgs[1:] == [{"role": "user", "content": "what colour?"}, {"role": "assistant", "content": "red"},
                        {"role": "user", "content": "what shape?"}]


def test_answer_messages_put_note_and_context_in_the_system_message():
    msgs = answer_messages(" red circle top left ", " What colour is the circle? ")
    assert msgs == [{"role": "system", "content": ANSWER_SYSTEM.format(context="red circle top left")},
                    {"role": "user", "content": "What colour is the circle?"}]
    system = msgs[0]["content"]
    assert "terse, possibly noisy description" in system and "De-Diffusion text" in system
    assert "one to three words" in system and system.endswith("\nContext: red circle top left")
    assert answer_messages("", "Q?")[0]["content"].endswith("Context: (empty)")
    with pytest.raises(ValueError, match="empty question"):
        answer_messages("text", " ")


@pytest.mark.parametrize("reply, answer", [
    ("The answer is: white.", "white"),
    ("The answer is white.", "white"),
    (" The answer is red.\n\nThe answer is red.", "red"),  # SmolLM2's few-shot habit
    (" 10\n\nThe answer is: 10", "10"),
    ("The answer is:\n\nwhite", "white"),  # what the newline stop used to cut to "The answer is:"
    ("white\nThe answer is:", "white"),
    ("Short answer: gray", "gray"),
    ('Answer: "a red circle".', "a red circle"),
    ("**White**", "White"),
    ("white", "white"),
    ("a red circle", "a red circle"),
    ("The background is white.", "white"),
    ("It is white.", "white"),
    ("The blue object is a circle.", "a circle"),
    ("The red object appears to be a circle, but it's actually a square.", "a circle"),
    ("The red circle is located at the top left corner of the image.", "at the top left corner of the image"),
    ("There are 3 objects: a green triangle, a yellow triangle.", "3 objects: a green triangle"),
    ("Colour: red", "Colour: red"),
    ("The background is a white, with a red circle at the top left.", "a white"),
    ("I cannot answer that.", "I cannot answer that"),  # not a lead-in
    ("Red is the colour.", "Red is the colour"),  # only a restated "the/it/there ..." subject goes
])
def test_extract_answer_on_realistic_replies(reply, answer):
    assert extract_answer(reply) == answer


@pytest.mark.parametrize("reply", ["", "   \n ", "The answer is:", "The answer is:\n\nThe answer is:",
                                   "Answer: ."])
def test_extract_answer_finds_nothing_in_empty_replies(reply):
    assert extract_answer(reply) == ""


def test_extracted_short_answers_are_scored_correct():
    cases = [("The answer is: white.", "white", "background"), ("It is grey.", "gray", "background"),
             ("There are three objects.", "3", "count"), ("The square is red.", "red", "colour"),
             ("a red circle", "circle", "shape"), ("a red circle", "red", "colour"),
             ("The red circle is located at the top left corner.", "top left", "position")]
    for reply, gold, kind in cases:
        assert is_correct(extract_answer(reply), gold, CANDIDATES[kind]), (reply, gold)
    assert not is_correct(extract_answer("The answer is:"), "white", CANDIDATES["background"])


def test_first_sentence():
    assert first_sentence("The circle is red. It is big.") == "The circle is red."
    assert first_sentence("\n Pi is 3.14 here! More") == "Pi is 3.14 here!"
    assert first_sentence("no end mark") == "no end mark"


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
