"""Caption-LM fusion at inference (``head.lm_fusion``): the search is exact, weight 0 is the argmax, and the
model's texts follow the weight."""
import itertools
import json

import numpy as np
import pytest
import torch

from dediffusion.data.world.scenes import caption_trigrams, vocabulary_words
from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.model.text_head import fuse_with_lm

WORDS = vocabulary_words()


def _score(lp, lm, w, seq):
    return sum(lp[t, k] for t, k in enumerate(seq)) + w * sum(lm[a, b, c] for a, b, c in zip(seq, seq[1:], seq[2:]))


@pytest.mark.parametrize("weight", [0.3, 1.0, 5.0])
def test_the_search_finds_the_best_sequence_that_brute_force_finds(weight):
    gen = torch.Generator().manual_seed(int(weight * 10))
    lp = torch.randn(3, 5, 4, generator=gen).log_softmax(-1)  # 3 texts, 5 positions, 4 words
    lm = torch.randn(4, 4, 4, generator=gen).log_softmax(-1)
    got = fuse_with_lm(lp, lm, weight)
    for b in range(3):
        best = max(itertools.product(range(4), repeat=5), key=lambda s: _score(lp[b], lm, weight, s))
        assert _score(lp[b], lm, weight, got[b].tolist()) == pytest.approx(_score(lp[b], lm, weight, best))


def test_weight_zero_is_the_argmax_and_a_large_weight_writes_what_the_language_model_likes():
    lp = torch.randn(2, 12, len(WORDS), generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    lm = torch.from_numpy(caption_trigrams(WORDS, n=300, wrap=True)).float()
    assert torch.equal(fuse_with_lm(lp, lm, 0.0), lp.argmax(-1))

    def nll(ids):
        return -np.mean([lm[a, b, c].item() for r in ids.tolist() for a, b, c in zip(r, r[1:], r[2:])])

    assert nll(lp.argmax(-1)) > 5.0 > 1.0 > nll(fuse_with_lm(lp, lm, 10.0))  # salad -> caption grammar
    text = " ".join(WORDS[i] for i in fuse_with_lm(lp, lm, 10.0)[0].tolist())
    assert " at the " in text, text


def test_the_model_fuses_only_when_asked_and_only_over_the_tokens_it_emits(tiny_model_dir):
    model = load_dediffusion(tiny_model_dir).eval()
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    plain = model.token_ids(images)
    assert model.caption_lm is None  # built on first use only
    model.set_inference(lm_fusion=5.0)
    fused = model.token_ids(images)
    assert model.caption_lm is not None and fused.shape == plain.shape and not torch.equal(fused, plain)
    model.set_inference(lm_fusion=5.0, inference_tokens=3)
    assert model.token_ids(images).shape == (4, 3)
    model.set_inference(lm_fusion=0.0, inference_tokens=0)
    assert torch.equal(model.token_ids(images), plain)


def test_refining_a_fused_text_is_refused_with_the_setting_to_change(tiny_model_dir):
    from dediffusion.eval.invert import encoder_logits

    model = load_dediffusion(tiny_model_dir).eval().set_inference(lm_fusion=0.5)
    with pytest.raises(ValueError, match="lm_fusion"):
        encoder_logits(model, torch.rand(2, 3, 8, 8))


def test_encode_fusion_writes_the_reader_text_and_refuses_a_negative_weight(tiny_model_dir, image_files, capsys,
                                                                          tmp_path):
    from dediffusion.apps.reading import reader_texts
    from dediffusion.cli.main import main
    from dediffusion.data.images import load_image

    good, _ = image_files
    model = load_dediffusion(tiny_model_dir).eval()
    image = load_image(str(good[0]), model.decoder.resolution)[None]
    assert main(["encode", str(good[0]), "--model", str(tiny_model_dir)]) == 0
    plain = capsys.readouterr().out.strip().split("\t")[-1]
    assert main(["encode", str(good[0]), "--model", str(tiny_model_dir), "--fusion", "5"]) == 0
    fused = capsys.readouterr().out.strip().split("\t")[-1]
    assert fused == reader_texts(model, image, 5.0)[0] != plain
    assert plain == model.texts(image)[0]
    assert main(["encode", str(good[0]), "--model", str(tiny_model_dir), "--fusion", "-1"]) != 0
    out = tmp_path / "texts.jsonl"  # the bulk path (bulk/ranked.py) writes the same reader text
    assert main(["encode", str(good[0]), "--model", str(tiny_model_dir), "--fusion", "5", "--out", str(out)]) == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == [fused]
    assert "--fusion -1" in capsys.readouterr().err
