import pytest
import torch

from dediffusion.model.autoencoder import load_dediffusion
from dediffusion.model.encoder import EncoderConfig
from dediffusion.model.text_head import TextHeadConfig, gumbel_softmax, temperature
from dediffusion.model.tokenizer import clip_tokenizer
from dediffusion.train.fit_encoder import build_model, train_encoder

from .conftest import tiny_train_cfg


def test_gradient_reaches_encoder_and_not_decoder(tiny_decoder_dir):
    model = build_model(tiny_train_cfg(), tiny_decoder_dir).train()
    images = torch.rand(3, 3, 8, 8)
    loss, logs = model(images, 1.0, torch.tensor([300, 600, 900]), torch.randn(3, 3, 8, 8),
                       generator=torch.Generator().manual_seed(0))
    loss.backward()
    for name in ("encoder.pooler.queries", "head.proj.weight", "encoder.backbone.net.0.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in model.decoder.parameters())
    assert 0 < logs["distinct"] <= 1


def test_decoder_weights_bit_identical_after_training(tiny_decoder_dir, tmp_path):
    model = build_model(tiny_train_cfg(), tiny_decoder_dir)
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    enc_before = model.encoder.pooler.queries.detach().clone()
    trained = train_encoder(tiny_train_cfg(steps=3), tmp_path, tiny_decoder_dir, progress=False)
    after = trained.decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(enc_before, trained.encoder.pooler.queries)


def test_hard_ids_are_argmax_over_allowed_vocab(tiny_decoder_dir):
    model = build_model(tiny_train_cfg(), tiny_decoder_dir).eval()
    images = torch.rand(4, 3, 8, 8)
    logits = model.forward_encoder(images)
    ids = model.token_ids(images)
    assert torch.equal(ids, model.head.allowed_ids[logits.argmax(-1)])
    tok = clip_tokenizer()
    assert not set(ids.flatten().tolist()) & set(tok.all_special_ids)
    # hard tokens enter the decoder exactly as the text they decode to
    texts = model.texts(images)
    for row, text in zip(ids.tolist(), texts):
        assert tok(text, add_special_tokens=False).input_ids == row
    hard = model.forward_tokens(logits, None)
    assert torch.allclose(model.decoder.text_states_from_embeds(hard), model.decoder.text_states(texts), atol=1e-5)


def test_save_load_gives_identical_outputs(tiny_decoder_dir, tmp_path):
    model = train_encoder(tiny_train_cfg(steps=2), tmp_path / "run", tiny_decoder_dir, progress=False).eval()
    model.save(tmp_path / "ckpt", dtype=torch.float32)
    again = load_dediffusion(tmp_path / "ckpt", decoder_folder=tiny_decoder_dir)
    images = torch.rand(3, 3, 8, 8)
    assert torch.equal(model.forward_encoder(images), again.forward_encoder(images))
    assert model.texts(images) == again.texts(images)


def test_temperature_anneals_exponentially_from_2_to_0_3():
    cfg = TextHeadConfig()
    assert temperature(0, 100, cfg) == pytest.approx(2.0)
    assert temperature(99, 100, cfg) == pytest.approx(0.3)
    mid = temperature(49.5, 100, cfg)
    assert mid == pytest.approx((2.0 * 0.3) ** 0.5)  # geometric mean half-way
    assert temperature(80, 100, TextHeadConfig(anneal=False)) == 2.0


def test_gumbel_samples_are_distributions_and_straight_through_is_one_hot():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    soft = gumbel_softmax(logits, 0.5, hard=False, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(soft.sum(-1), torch.ones(2, 5))
    hard = gumbel_softmax(logits, 0.5, hard=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(hard.detach().max(-1).values, torch.ones(2, 5)) and torch.equal(hard.argmax(-1), soft.argmax(-1))
    (hard * torch.randn(7)).sum().backward()  # straight-through: soft gradients flow
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_collision_rate_is_one_for_a_repeated_word_and_zero_for_distinct_words():
    from dediffusion.model.text_head import collision_rate

    big = 50.0
    repeated = torch.full((1, 4, 6), -big)
    repeated[..., 2] = big
    distinct = torch.full((1, 4, 6), -big)
    distinct[0, torch.arange(4), torch.arange(4)] = big
    assert collision_rate(repeated).item() == pytest.approx(1.0)
    assert collision_rate(distinct).item() == pytest.approx(0.0, abs=1e-6)
    assert collision_rate(torch.zeros(2, 4, 6)).allclose(torch.full((2,), 1 / 6))


def test_attribute_cnn_backbone_is_frozen_pretrained_and_saved_with_the_encoder(tmp_path):
    from dediffusion.model.encoder import ImageEncoder
    from dediffusion.model.attribute_cnn import Probe, save_probe

    torch.manual_seed(3)
    pretrained = Probe()
    save_probe(pretrained, tmp_path / "backbone", dtype=torch.float32)
    enc = ImageEncoder(EncoderConfig(backbone="attribute_cnn", width=16, heads=2, blocks=1, num_tokens=4), resolution=16)
    enc.backbone.load_pretrained(tmp_path / "backbone")
    assert enc.backbone_frozen
    assert all(torch.equal(a, b) for a, b in zip(enc.backbone.net.state_dict().values(), pretrained.state_dict().values()))
    tokens = enc.backbone(torch.rand(2, 3, 16, 16))
    assert tokens.shape == (2, 64, 64 + 256)
    out = enc(torch.rand(2, 3, 16, 16))
    out.sum().backward()
    assert enc.pooler.queries.grad is not None
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert any(k.startswith("backbone.net.") for k in enc.state_dict())  # travels inside encoder.safetensors


def test_sampled_inference_is_per_image_deterministic_and_enters_the_decoder_as_its_text():
    from dediffusion.model.text_head import TextHead

    allowed = torch.arange(100, 130)
    head = TextHead(8, allowed, TextHeadConfig(inference="sample", sample_temperature=0.5, sample_seed=3))
    logits = torch.randn(5, 7, 30)
    ids = head.hard_ids(logits)
    assert set(ids.flatten().tolist()) <= set(allowed.tolist())
    assert torch.equal(ids[2:3], head.hard_ids(logits[2:3]))  # a text depends on its image, not the batch
    assert torch.equal(ids, head.hard_ids(logits))  # and is the same every call
    assert torch.equal(head.one_hot(logits).argmax(-1), head.choice(logits))
    # a draw, not the argmax: flat logits give several words where the argmax repeats one
    flat = torch.zeros(1, 7, 30)
    flat[..., 0] = 0.1
    assert len(set(head.hard_ids(flat).flatten().tolist())) > 1
    assert set(TextHead(8, allowed).hard_ids(flat).flatten().tolist()) == {100}
    # very sharp logits: sampling agrees with the argmax
    sharp = torch.full((2, 7, 30), -50.0)
    sharp[..., 4] = 50.0
    assert torch.equal(head.hard_ids(sharp), TextHead(8, allowed).hard_ids(sharp))
    with pytest.raises(ValueError, match="unknown inference"):
        TextHead(8, allowed, TextHeadConfig(inference="beam")).hard_ids(logits)


def test_batch_sameness_is_zero_for_spread_choices_and_one_for_a_shared_text():
    from dediffusion.model.text_head import batch_sameness

    same = torch.full((4, 3, 4), -50.0)
    same[..., 1] = 50.0
    spread = torch.full((4, 3, 4), -50.0)
    spread[torch.arange(4), :, torch.arange(4)] = 50.0
    assert batch_sameness(same).item() == pytest.approx(1.0, abs=1e-5)
    assert batch_sameness(spread).item() == pytest.approx(0.0, abs=1e-5)
