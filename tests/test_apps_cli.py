"""``ask``, ``chat`` and ``vqa-eval`` end to end on a tiny encoder, a tiny local LLM and a local server."""
import io
import json
import socket
import sys

import pytest

from dediffusion.apps.llm import LocalLLM
from dediffusion.apps.llm_prompts import ANSWER_SYSTEM, CHAT_SYSTEM, answer_messages
from dediffusion.cli.main import main

from .openai_server import OpenAIServer


def test_ask_with_local_llm_prints_one_answer_line(tiny_model_dir, tiny_llm_dir, image_files, tmp_path, capsys):
    good, _ = image_files
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"context": "blue blue", "question": "What colour?", "answer": "blue"}) + "\n")
    args = ["ask", str(good[0]), "What colour is the circle?", "--model", str(tiny_model_dir),
            "--llm-dir", str(tiny_llm_dir), "--shots", str(shots), "--show-prompt", "--show-context"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) <= 1
    text = err.split("image text: ", 1)[1].split("\n", 1)[0]
    assert text.split() and f"Image context: {text}\nQuestion: What colour is the circle?\nShort answer:" in err
    assert "Image context: blue blue\nQuestion: What colour?\nShort answer: blue" in err
    assert main(args) == 0 and capsys.readouterr().out == out  # greedy: the same answer again


def test_ask_remote_zero_shot_sends_the_system_message_and_question(tiny_model_dir, image_files, capsys):
    good, _ = image_files
    with OpenAIServer() as s:
        assert main(["ask", str(good[1]), "How many objects?", "--model", str(tiny_model_dir),
                     "--llm-url", s.url, "--llm-model", "m", "--show-context"]) == 0
        sent = s.requests[0]["body"]["messages"]
    out, err = capsys.readouterr()
    text = err.split("image text: ", 1)[1].split("\n", 1)[0]
    assert sent == answer_messages(text, "How many objects?")
    assert out == "m: How many objects\n"  # the echo "m: How many objects?", reduced to its phrase


def test_ask_remote_few_shot_sends_the_paper_prompt(tiny_model_dir, image_files, tmp_path, capsys):
    good, _ = image_files
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"context": "blue blue", "question": "What colour?", "answer": "blue"}) + "\n")
    with OpenAIServer() as s:
        assert main(["ask", str(good[1]), "How many objects?", "--model", str(tiny_model_dir),
                     "--llm-url", s.url, "--llm-model", "m", "--shots", str(shots)]) == 0
        sent = s.requests[0]["body"]["messages"][0]["content"]
    assert capsys.readouterr().out == "m: Answer the question given the context\n"  # first sentence of the echo
    assert sent.startswith("Answer the question given the context.\n\nImage context: blue blue\n")
    assert sent.endswith("\nQuestion: How many objects?\nShort answer:")


@pytest.fixture()
def scripted_llm(monkeypatch):
    """The local backend with its generation replaced by a script: ``sent`` holds the rendered prompts."""
    script = {"reply": "", "sent": []}

    def complete_many(self, prompts, max_tokens=16, stop=(), batch_size=8):
        script["sent"] += prompts
        return [script["reply"] for _ in prompts]

    monkeypatch.setattr(LocalLLM, "complete_many", complete_many)
    return script


def test_ask_text_prints_the_answer_phrase(tiny_llm_dir, scripted_llm, capsys):
    text = "a large red circle at the top left on a white background"
    scripted_llm["reply"] = "The answer is: white."
    assert main(["ask", "--text", text, "What colour is the background?", "--llm-dir", str(tiny_llm_dir)]) == 0
    assert capsys.readouterr().out == "white\n"
    assert scripted_llm["sent"] == [  # the tiny tokenizer's chat template, the system message, the question
        "<|im_start|>system\n" + ANSWER_SYSTEM.format(context=text) + "<|im_end|>\n"
        "<|im_start|>user\nWhat colour is the background?<|im_end|>\n<|im_start|>assistant\n"]
    scripted_llm["reply"] = "The red circle is located at the top left corner. It is large."
    assert main(["ask", "--text", text, "Where is the red circle?", "--llm-dir", str(tiny_llm_dir)]) == 0
    assert capsys.readouterr().out == "at the top left corner\n"


@pytest.mark.parametrize("reply", ["", "The answer is:", "\n\n"])
def test_ask_reports_an_empty_answer(tiny_llm_dir, scripted_llm, capsys, reply):
    scripted_llm["reply"] = reply
    assert main(["ask", "--text", "red circle", "What colour?", "--llm-dir", str(tiny_llm_dir)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.endswith(f"\nerror: the LLM gave no answer (its reply: {reply.strip()!r})\n")


def test_ask_with_the_real_tiny_llm_prints_words_or_reports(tiny_llm_dir, capsys):
    code = main(["ask", "--text", "red circle", "What colour?", "--llm-dir", str(tiny_llm_dir), "--max-tokens", "8"])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # transformers logs on stderr too
    answered = code == 0 and not errors and len(out.splitlines()) == 1 and out.strip()
    assert answered or (code, out, len(errors)) == (1, "", 1)


def test_ask_needs_an_image_or_text_but_not_both(tiny_llm_dir, image_files, capsys):
    good, _ = image_files
    assert main(["ask", "What colour?", "--llm-dir", str(tiny_llm_dir)]) == 2
    assert capsys.readouterr().err == "error: give an image file or --text TEXT\n"
    assert main(["ask", str(good[0]), "What colour?", "--text", "red", "--llm-dir", str(tiny_llm_dir)]) == 2
    assert capsys.readouterr().err == "error: give an image file or --text, not both\n"


def test_chat_text_keeps_replies_to_one_sentence(tiny_llm_dir, scripted_llm, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("what is it?\n"))
    scripted_llm["reply"] = "A red circle. A red circle at the top left on a white background."
    assert main(["chat", "--text", "red circle top left", "--llm-dir", str(tiny_llm_dir)]) == 0
    assert capsys.readouterr().out == "A red circle.\n"
    system = CHAT_SYSTEM.format(context="red circle top left")
    assert scripted_llm["sent"] == [f"<|im_start|>system\n{system}<|im_end|>\n"
                                    "<|im_start|>user\nwhat is it?<|im_end|>\n<|im_start|>assistant\n"]


def test_ask_bad_inputs_are_one_line_errors(tiny_model_dir, image_files, capsys):
    _, bad = image_files
    assert main(["ask", str(bad[0]), "What colour?", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(bad[0]) in err
    assert main(["ask", str(bad[0]), "   "]) == 2
    assert capsys.readouterr().err == "error: empty question\n"


def test_ask_unreachable_server_is_one_line_error(tiny_model_dir, image_files, capsys):
    good, _ = image_files
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["ask", str(good[0]), "What colour?", "--model", str(tiny_model_dir),
                 "--llm-url", f"http://127.0.0.1:{port}/v1", "--llm-retries", "0"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot connect" in err


def test_chat_reads_piped_stdin_until_eof_and_keeps_history(tiny_model_dir, image_files, monkeypatch, capsys):
    good, _ = image_files
    monkeypatch.setattr(sys, "stdin", io.StringIO("what colour is it?\n\nand its shape?\n"))
    with OpenAIServer() as s:
        assert main(["chat", str(good[0]), "--model", str(tiny_model_dir), "--llm-url", s.url]) == 0
        first, second = (r["body"]["messages"] for r in s.requests)
    assert capsys.readouterr().out.splitlines() == ["default: what colour is it?", "default: and its shape?"]
    assert [m["role"] for m in first] == ["system", "user"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "default: what colour is it?"


def test_chat_with_local_llm(tiny_model_dir, tiny_llm_dir, image_files, monkeypatch, capsys):
    good, _ = image_files
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert main(["chat", str(good[0]), "--model", str(tiny_model_dir), "--llm-dir", str(tiny_llm_dir),
                 "--max-tokens", "5"]) == 0


def test_vqa_eval_small_run_writes_json(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "vqa.json"
    with OpenAIServer() as s:
        assert main(["vqa-eval", "--n", "5", "--episodes", "2", "--shots", "0,1", "--model", str(tiny_model_dir),
                     "--llm-url", s.url, "-o", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| dediffusion |" in table and "| no_context |" in table
    result = json.loads(out.read_text())
    assert set(result["vqa"]["full_caption"]) == {"0", "1"}
    assert all(0.0 <= c["accuracy"] <= 1.0 for by in result["vqa"].values() for c in by.values())
    assert main(["vqa-eval", "--seed", "0", "--model", str(tiny_model_dir), "--llm-url", s.url]) == 2


def test_vqa_eval_records_the_shape_decoder_and_refuses_it_without_the_readers_caption(tiny_model_dir, tiny_decoder_dir,
                                                                                         tmp_path, capsys):
    out = tmp_path / "vqa.json"
    base = ["vqa-eval", "--n", "2", "--episodes", "0", "--shots", "0", "--sources", "full_caption",
            "--model", str(tiny_model_dir), "--shape-decoder", str(tiny_decoder_dir)]
    with OpenAIServer() as s:
        assert main([*base, "--fusion", "0", "--llm-url", s.url]) == 2
        assert "needs --fusion > 0" in capsys.readouterr().err
        assert main([*base, "--fusion", "0.2", "--llm-url", s.url, "-o", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["shape_decoder"] == str(tiny_decoder_dir)
