"""The caption-bigram readability prior (``head.bigram_weight``): the table, the loss and training with it."""
import json
from dataclasses import replace

import numpy as np
import torch

from dediffusion.data.world.scenes import caption_bigrams, vocabulary_words
from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.model.text_head import bigram_nll
from dediffusion.train.fit_encoder import train_encoder
from .conftest import tiny_train_cfg

WORDS = vocabulary_words()


def _one_hot(text: str) -> torch.Tensor:
    ids = torch.tensor([WORDS.index(w) for w in text.split()])
    return torch.nn.functional.one_hot(ids, len(WORDS)).float()[None]  # (1,N,A)


def test_the_table_is_a_distribution_per_word_and_knows_caption_order():
    table = caption_bigrams(WORDS, n=500)
    np.testing.assert_allclose(np.exp(table).sum(1), 1.0, rtol=1e-9)
    i = {w: k for k, w in enumerate(WORDS)}
    assert table[i["at"], i["the"]] > np.log(0.99)  # "at the top left" in every caption
    assert table[i["left"], i["left"]] < np.log(0.01)


def test_caption_like_text_costs_less_than_word_salad_and_the_gradient_reaches_the_logits():
    table = torch.from_numpy(caption_bigrams(WORDS, n=500)).float()
    caption = bigram_nll(_one_hot("a large red circle at the top left on a black background"), table)
    salad = bigram_nll(_one_hot("left left red left bottom bottom blue blue right right left"), table)
    assert caption < 1.5 < 5.0 < salad
    logits = torch.zeros(2, 6, len(WORDS), requires_grad=True)
    bigram_nll(logits.softmax(-1), table).backward()
    assert logits.grad.abs().sum() > 0


def test_training_with_the_prior_logs_it_and_the_checkpoint_stays_the_same_kind(tiny_decoder_dir, tmp_path):
    cfg = tiny_train_cfg(steps=2)
    cfg = replace(cfg, model=replace(cfg.model, head=replace(cfg.model.head, bigram_weight=0.01)))
    train_encoder(cfg, tmp_path / "run", tiny_decoder_dir, progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["bigram"] > 0 for r in rows)
    model = load_dediffusion(tmp_path / "run")  # the table is rebuilt, never stored
    assert model.cfg.head.bigram_weight == 0.01 and model.text_prior is None
    assert len(model.texts(torch.rand(2, 3, 8, 8))) == 2
    images = torch.rand(2, 3, 8, 8)
    loss, logs = model(images, tau=0.3, t=torch.tensor([100, 500]), noise=torch.randn_like(images))
    assert model.text_prior is not None and logs["bigram"] > 0  # the loaded model trains on: built on first use


def test_a_wrapped_table_ends_a_caption_and_starts_the_next_one():
    i = {w: k for k, w in enumerate(WORDS)}
    plain, wrapped = caption_bigrams(WORDS, n=500), caption_bigrams(WORDS, n=500, wrap=True)
    assert np.ptp(plain[i["background"]]) < 1e-12  # never followed: the plain table's row is uniform
    assert wrapped[i["background"], i["a"]] > np.log(0.99)  # every full caption starts with "a"
    np.testing.assert_allclose(np.exp(wrapped).sum(1), 1.0, rtol=1e-9)
    others = [k for k in range(len(WORDS)) if k != i["background"]]  # "background" ends every full caption
    np.testing.assert_allclose(wrapped[others], plain[others])  # only the end-of-caption row changes


def test_the_model_builds_the_table_its_config_names(tiny_model_dir):
    from dediffusion.model.autoencoder import caption_prior
    from dediffusion.model.tokenizer import decode_ids

    model = load_dediffusion(tiny_model_dir)
    words = [decode_ids(model.decoder.tokenizer, [i]) for i in model.head.allowed_ids.tolist()]
    tables = []
    for wrap in (False, True):
        model.cfg = replace(model.cfg, head=replace(model.cfg.head, bigram_weight=0.001, bigram_wrap=wrap))
        tables.append(caption_prior(model).numpy())
        np.testing.assert_allclose(tables[-1], caption_bigrams(words, wrap=wrap), rtol=1e-6)
    assert np.abs(tables[0] - tables[1]).max() > 1.0  # the flag reaches the table
