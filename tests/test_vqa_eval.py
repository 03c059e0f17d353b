"""The VQA / classification evaluation wires each context to its own scene: an LLM that echoes the
query's context scores exactly what that context reveals."""
import pytest

from dediffusion.apps.reading import mentions
from dediffusion.apps.vqa import SOURCES, VQAEvalConfig, full_sentences, human_sentences, run_eval
from dediffusion.data.world.scenes import full_caption, sample_scene


class EchoLLM:
    """Answers with the query's image context: the last one in a few-shot prompt, the system
    message's in a 0-shot chat (as a sentence, "The answer is: <context>.")."""

    name = "echo"

    def __init__(self):
        self.prompts, self.chats = [], []

    def complete(self, prompt, max_tokens=16, stop=()):
        self.prompts.append(prompt)
        return prompt.rsplit("Image context:", 1)[1].split("\n", 1)[0].strip()

    def chat(self, messages, max_tokens=128, stop=()):
        self.chats.append(messages)
        return f"The answer is: {messages[0]['content'].rsplit('Context: ', 1)[1]}."


def fake_dd_texts(scenes):
    return [f"scene with {len(s.objects)} things" for s in scenes]


@pytest.fixture(scope="module")
def result():
    cfg = VQAEvalConfig(seed=1, shot_seed=2, n_questions=40, shots=(0, 2), n_episodes=10)
    llm = EchoLLM()
    out = run_eval(cfg, llm, fake_dd_texts, progress=False)
    out["_prompts"], out["_chats"] = llm.prompts, llm.chats
    return out


def test_every_cell_is_reported(result):
    assert set(result["vqa"]) == set(SOURCES)
    for by_shot in result["vqa"].values():
        assert set(by_shot) == {"0", "2"}
        assert all(cell["n"] == 40 for cell in by_shot.values())
    assert sum(result["question_kinds"].values()) == 40
    assert len(result["_chats"]) == len(SOURCES) * 40  # 0-shot: chat
    assert len(result["_prompts"]) == len(SOURCES) * (40 + 10)  # 2-shot and classification: completion


def test_echoed_full_caption_answers_background_and_classification(result):
    full, blank = result["vqa"]["full_caption"]["0"], result["vqa"]["no_context"]["0"]
    assert full["by_kind"]["background"] == 1.0  # the full caption names the background
    assert blank["accuracy"] == 0.0  # an empty context echoes nothing
    assert result["vqa"]["human_caption"]["0"]["by_kind"]["background"] == 0.0  # not in human captions
    assert result["classification"]["full_caption"]["accuracy"] == 1.0
    assert result["classification"]["human_caption"]["accuracy"] == 1.0
    assert result["classification"]["no_context"]["accuracy"] == 0.0


def test_the_sentences_layouts_state_the_count_and_keep_each_captions_content(result):
    vqa = result["vqa"]
    for source in ("human_sentences", "full_sentences"):
        assert vqa[source]["0"]["by_kind"]["count"] == 1.0  # "There are two objects."
    assert vqa["human_caption"]["0"]["by_kind"]["count"] == 0.0  # no number in "a red circle and a blue square"
    scene = sample_scene(1, 0)
    assert mentions(full_sentences(scene).lower().replace(".", "").split())[0] == mentions(full_caption(scene).split())[0]
    assert full_sentences(scene).endswith(f"The background is {scene.background}.")
    assert "background" not in human_sentences(scene)  # the human caption's content only
    assert result["classification"]["human_sentences"]["accuracy"] == 1.0


def test_fake_dediffusion_text_answers_count(result):
    # "scene with N things" contains only the right count
    assert result["vqa"]["dediffusion"]["0"]["by_kind"]["count"] == 1.0


def test_shots_are_in_the_prompt_and_differ_from_the_query(result):
    two_shot = [p for p in result["_prompts"] if p.count("Short answer:") == 3]
    assert len(two_shot) == len(SOURCES) * 40
    assert all(p.startswith("Answer the question given the context.\n\n") for p in two_shot)


def test_zero_shot_asks_exactly_as_ask_does(result):
    """0-shot cells send ``ask``'s messages (answer_messages) and score the extracted phrase."""
    from dediffusion.apps.llm_prompts import answer_messages
    from dediffusion.apps.questions import question_stream
    from dediffusion.data.world.batches import scenes
    from dediffusion.data.world.scenes import full_caption

    queries = scenes(1, 0, 40)
    full = result["_chats"][2 * 40 : 3 * 40]  # sources in order: dediffusion, human_caption, full_caption, ...
    assert full == [answer_messages(full_caption(queries[i]), q.question) for i, q in question_stream(queries, 1)]
    first = result["vqa_examples"][0]
    assert first["shots"] == 0 and first["prediction"] == first["context"]  # "The answer is: X." -> "X"


def test_training_seed_and_overlapping_streams_are_refused():
    with pytest.raises(ValueError, match="training seed"):
        run_eval(VQAEvalConfig(seed=0), EchoLLM(), fake_dd_texts, progress=False)
    with pytest.raises(ValueError, match="must differ"):
        run_eval(VQAEvalConfig(seed=3, shot_seed=3), EchoLLM(), fake_dd_texts, progress=False)


def test_runs_over_split_sources_merge_to_the_full_run(result):
    from dediffusion.apps.vqa import merge_results

    cfg = dict(seed=1, shot_seed=2, n_questions=40, shots=(0, 2), n_episodes=10)
    parts = [run_eval(VQAEvalConfig(sources=s, **cfg), EchoLLM(), fake_dd_texts, progress=False)
             for s in (SOURCES[:1], SOURCES[1:])]
    merged = merge_results(parts)
    assert merged["vqa"] == result["vqa"] and merged["classification"] == result["classification"]
    assert merged["config"]["sources"] == list(SOURCES)
    with pytest.raises(ValueError, match="overlap"):
        merge_results([parts[0], parts[0]])
