"""TailDrop (one encoder, any length), ``--tokens``, and the noised-caption generator."""
import numpy as np
import torch

from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.cli.main import main
from dediffusion.model.decoders import load_decoder
from dediffusion.data.images import save_image
from dediffusion.train.fit_encoder import tail_lengths, train_encoder
from dediffusion.data.world.batches import images_tensor, scenes
from dediffusion.data.world.scenes import (FUNCTION_WORDS, corrupt, full_caption, noisy_caption, tag_caption,
    vocabulary_words)
from .conftest import tiny_train_cfg


def test_truncated_token_vectors_give_the_states_of_the_shorter_prompt(tiny_decoder_dir):
    dec = load_decoder(tiny_decoder_dir)
    words = ["red", "circle", "top", "left", "black"]
    ids = [dec.tokenize([w])[0][0] for w in words]
    vecs = dec.token_embedding[torch.tensor([ids, ids])]  # (2,5,D)
    lengths = torch.tensor([5, 2])
    got = dec.text_states_from_embeds(vecs, lengths)
    torch.testing.assert_close(got[0], dec.text_states_from_ids([ids])[0])
    torch.testing.assert_close(got[1], dec.text_states_from_ids([ids[:2]])[0])
    torch.testing.assert_close(dec.text_states_from_embeds(vecs), dec.text_states_from_embeds(vecs, torch.tensor([5, 5])))


def test_tail_lengths_cut_a_share_of_texts_uniformly_and_keep_the_rest_whole(tiny_decoder_dir):
    cfg = tiny_train_cfg(tail_drop=0.5, tail_min=2)
    n = cfg.model.encoder.num_tokens
    lengths = tail_lengths(cfg, 4000, torch.Generator().manual_seed(0))
    assert lengths.min() >= 2 and lengths.max() == n
    expected = 0.5 * (n - 2) / (n - 1)  # dropped, and the uniform cut in 2..n fell short of n
    assert abs(float((lengths < n).float().mean()) - expected) < 0.03
    counts = torch.bincount(lengths[lengths < n], minlength=n)[2:n]  # cuts 2..n-1 equally likely
    assert counts.min() > 0.8 * counts.max()
    assert tail_lengths(tiny_train_cfg(tail_drop=0.0), 8, torch.Generator()) is None


def test_tokens_beyond_the_cut_get_no_gradient(tiny_decoder_dir):
    from dediffusion.train.fit_encoder import build_model

    cfg = tiny_train_cfg(tail_drop=1.0, tail_min=1)
    model = build_model(cfg, tiny_decoder_dir).train()
    logits = model.forward_encoder(images_tensor(scenes(0, 0, 1), 8)).detach().requires_grad_(True)
    vecs = model.head.embed(model.head.sample(logits, 1.0, torch.Generator().manual_seed(0)), model.decoder.token_embedding)
    t, noise = torch.tensor([500]), torch.randn(1, 3, 8, 8)
    model.forward_loss(images_tensor(scenes(0, 0, 1), 8), vecs, t, noise, torch.tensor([2])).backward()
    per_pos = logits.grad.abs().sum(-1)[0]  # (N,)
    assert (per_pos[:2] > 0).all() and (per_pos[2:] == 0).all()


def test_encode_tokens_flag_emits_a_prefix_of_the_full_text(tiny_decoder_dir, tmp_path, capsys):
    train_encoder(tiny_train_cfg(steps=2, tail_drop=0.5), tmp_path / "run", tiny_decoder_dir, progress=False)
    img = tmp_path / "scene.png"
    save_image(images_tensor(scenes(3, 0, 1), 8)[0], img)
    assert main(["encode", str(img), "--model", str(tmp_path / "run"), "--format", "jsonl"]) == 0
    import json

    full = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["text"].split()
    assert main(["encode", str(img), "--model", str(tmp_path / "run"), "--format", "jsonl", "--tokens", "2"]) == 0
    short = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["text"].split()
    assert 1 <= len(short) <= 2 and short == full[: len(short)]  # BPE words are one token each here
    assert main(["encode", str(img), "--model", str(tmp_path / "run"), "--tokens", "999"]) == 2
    model = load_dediffusion(tmp_path / "run", tiny_decoder_dir).set_inference(inference_tokens=3)
    assert model.token_ids(images_tensor(scenes(3, 0, 2), 8)).shape == (2, 3)


def test_tag_caption_has_every_attribute_and_no_function_word():
    rng = np.random.default_rng(0)
    for i in range(50):
        s = scenes(0, i, 1)[0]
        tags = tag_caption(s, rng).split()
        full = full_caption(s).split()
        assert sorted(tags) == sorted(w for w in full if w not in FUNCTION_WORDS)


def test_noisy_captions_are_vocabulary_words_and_corrupt_drops_repeats_and_inserts():
    rng = np.random.default_rng(1)
    vocab = set(vocabulary_words())
    texts = [noisy_caption(s, rng) for s in scenes(0, 0, 300)]
    assert all(t and set(t.split()) <= vocab for t in texts)
    assert sum(not (set(t.split()) & set(FUNCTION_WORDS)) for t in texts) > 60  # many tag lists
    words = "large red circle top left".split()
    assert corrupt(" ".join(words), rng, p_drop=0, p_repeat=0, p_stray=0) == " ".join(words)
    assert corrupt(" ".join(words), rng, p_drop=0, p_repeat=1, p_stray=0).split() == [w for w in words for _ in (0, 1)]
    assert corrupt(" ".join(words), rng, p_drop=1, p_repeat=0, p_stray=0) == "large"  # never empty
    stray = corrupt(" ".join(words), rng, p_drop=0, p_repeat=0, p_stray=1).split()
    assert len(stray) == 10 and stray[1::2] == words
