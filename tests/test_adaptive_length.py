"""``--adaptive-length``: the frozen decoder cuts each text to the prefix it denoises the image best with."""
import json

import pytest

from dediffusion.apps.vqa import _single_object_scenes
from dediffusion.cli.main import main
from dediffusion.data.images import save_image
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import FUNCTION_WORDS, full_caption
from dediffusion.model.decoders import load_decoder
from dediffusion.model.synthesis import pick_lengths, prefix_lengths
from dediffusion.model.tokenizer import decode_ids
from dediffusion.pretrained import resolve


def test_prefix_lengths_end_at_the_budget_and_hold_every_smaller_budgets_lengths():
    assert prefix_lengths(32) == [4, 8, 16, 24, 32]
    assert prefix_lengths(20) == [4, 8, 16, 20] and prefix_lengths(3) == [3] and prefix_lengths(75)[-2:] == [72, 75]
    for small in range(1, 40):
        for big in range(small + 1, 41):
            assert set(prefix_lengths(small)) - {small} <= set(prefix_lengths(big))
    with pytest.raises(ValueError, match="budget"):
        prefix_lengths(0)


def test_the_decoder_cuts_function_word_padding_off_one_object_captions():
    """The shipped decoder draws extra objects for extra words (benchmarks/dev_phantoms): a one-object caption
    padded to 32 tokens with function words is cut back to at most 16 tokens, and only cut."""
    decoder = load_decoder(resolve(None, "decoder"))
    chosen = _single_object_scenes(3, 8)
    word_id = {w: decoder.tokenize([w])[0][0] for w in {*FUNCTION_WORDS, *" ".join(map(full_caption, chosen)).split()}}
    padding = list(FUNCTION_WORDS) * 6
    ids = [[word_id[w] for w in (full_caption(s).split() + padding)[:32]] for s in chosen]
    cut = pick_lengths(decoder, images_tensor(chosen, decoder.resolution), ids,
                       lambda row: decode_ids(decoder.tokenizer, row))
    assert all(len(c) in (4, 8, 16) and c == row[:len(c)] for c, row in zip(cut, ids))
    assert pick_lengths(decoder, images_tensor(chosen, 16)[:0], [], str) == []


def test_adaptive_texts_are_prefixes_of_the_budgets_text(tiny_decoder_dir, tmp_path, capsys):
    from dediffusion.train.fit_encoder import train_encoder

    from .conftest import tiny_train_cfg

    train_encoder(tiny_train_cfg(steps=2, tail_drop=0.5), tmp_path / "run", tiny_decoder_dir, progress=False)
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(images_tensor(scenes(3, 0, 4), 8)):
        save_image(image, images / f"{i}.png")
    texts = {}
    for flags in ([], ["--adaptive-length"]):
        assert main(["encode", str(images), "--model", str(tmp_path / "run"), "--format", "jsonl", *flags]) == 0
        texts[bool(flags)] = [json.loads(line)["text"].split() for line in capsys.readouterr().out.strip().splitlines()]
    n = len(texts[False][0])
    for fixed, adaptive in zip(texts[False], texts[True]):
        assert adaptive == fixed[:len(adaptive)] and len(adaptive) in prefix_lengths(n)


def test_explain_refuses_adaptive_length_with_a_usage_error(capsys):
    assert main(["explain", "scene.png", "--adaptive-length"]) == 2
    assert "--adaptive-length does not apply" in capsys.readouterr().err
