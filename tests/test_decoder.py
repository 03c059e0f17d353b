import inspect

import torch

from dediffusion.model.decoders import load_decoder
from dediffusion.model.decoders.builtin import BuiltinDecoder
from dediffusion.model.sampling import generate


def test_prompt_ids_and_embeds_give_identical_text_states(tiny_decoder_dir):
    d = load_decoder(tiny_decoder_dir).eval()
    prompts = ["a red circle at the top left", "a blue square", ""]
    ids = d.tokenize(prompts)
    from_text = d.text_states(prompts)
    assert torch.equal(from_text, d.text_states_from_ids(ids))
    emb = d.token_embedding[torch.tensor(ids[0])].unsqueeze(0)
    assert torch.allclose(from_text[:1], d.text_states_from_embeds(emb), atol=1e-6)
    # ... and the same as the text encoder's own forward on SD-style padded ids
    full = d.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.allclose(from_text, d.text_encoder(input_ids=full).last_hidden_state, atol=1e-5)


def test_long_prompt_is_truncated_with_a_warning(tiny_decoder_dir):
    d = load_decoder(tiny_decoder_dir)
    import pytest

    with pytest.warns(UserWarning, match="truncated"):
        ids = d.tokenize(["red " * 100])
    assert len(ids[0]) == 75


def test_save_load_gives_identical_outputs(tiny_decoder_dir, tmp_path):
    d = load_decoder(tiny_decoder_dir).eval()
    d.save(tmp_path, dtype=torch.float32)
    d2 = load_decoder(tmp_path).eval()
    x = torch.rand(2, 3, 8, 8)
    t = torch.tensor([10, 900])
    cond = d.text_states(["a red circle", "a green square"])
    assert torch.equal(d.loss(x, cond, t, torch.zeros_like(x)), d2.loss(x, cond, t, torch.zeros_like(x)))
    a = generate(d, ["a red circle"], steps=2, seed=3)
    b = generate(d2, ["a red circle"], steps=2, seed=3)
    assert torch.equal(a, b) and a.shape == (1, 3, 8, 8) and 0 <= a.min() and a.max() <= 1


def test_v_prediction_loss_target_and_weighting(tiny_decoder_dir):
    from dediffusion.model import diffusion

    d = load_decoder(tiny_decoder_dir)
    x0, noise, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([100, 800])
    v = diffusion.training_target(d.scheduler, x0, noise, t)
    ab = d.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(v, ab.sqrt() * noise - (1 - ab).sqrt() * x0, atol=1e-5)
    perfect = lambda x_t, tt, c: v  # noqa: E731 - a model that predicts the target exactly
    assert diffusion.denoising_loss(perfect, d.scheduler, x0, None, t, noise).abs().max() == 0


def test_epsilon_weight_turns_each_prediction_types_loss_into_the_noise_estimates_error():
    from diffusers import DDPMScheduler

    from dediffusion.model import diffusion

    x0, noise, t = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8), torch.tensor([50, 500, 950])
    guess = torch.randn(3, 3, 8, 8)  # any model output
    for kind in ("epsilon", "v_prediction", "sample"):
        sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=kind)
        ab = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = sched.add_noise(x0, noise, t)
        if kind == "epsilon":
            eps_hat = guess
        elif kind == "v_prediction":
            eps_hat = (1 - ab).sqrt() * x_t + ab.sqrt() * guess
        else:
            eps_hat = (x_t - ab.sqrt() * guess) / (1 - ab).sqrt()
        eps_err = ((eps_hat - noise) ** 2).mean(dim=(1, 2, 3))
        loss = diffusion.denoising_loss(lambda x, tt, c: guess, sched, x0, None, t, noise)
        assert torch.allclose(loss * diffusion.epsilon_weight(sched, t), eps_err, rtol=1e-4), kind
    assert diffusion.epsilon_weight(sched, t)[0] > 1 > diffusion.epsilon_weight(sched, t)[2]  # x0: low t counts more


def test_text_layout_maps_reach_the_denoiser_and_the_tokens(tmp_path):
    """``layout_channels``: the prompt reaches the output through the layout maps alone (cross-attention
    bypassed), gradients reach the token table through them, and save/load is exact."""
    from dataclasses import replace

    from tests.conftest import TINY_DECODER

    cfg = replace(TINY_DECODER, layout_channels=2, layout_tokens=8)
    d = BuiltinDecoder(cfg)
    assert d.unet.conv_in.in_channels == 3 + 2 + 2
    x, t = torch.rand(1, 3, 8, 8), torch.tensor([999])
    states = d.text_states(["a red circle at the top left", "a blue square"])
    d.eval().save(tmp_path, dtype=torch.float32)
    d2 = load_decoder(tmp_path).eval()
    assert d2.cfg == cfg and torch.equal(d.model_fn(x, t, states[:1]), d2.model_fn(x, t, states[:1]))
    for m in d.unet.modules():
        if type(m).__name__ == "Transformer2DModel":
            m.forward = lambda hidden_states, *a, **k: (hidden_states,)
    outs = d.model_fn(x.expand(2, -1, -1, -1), t.expand(2), states)
    assert not torch.allclose(outs[0], outs[1])
    outs[0].square().mean().backward()
    assert d.token_embedding.grad.abs().sum() > 0


def test_causal_mask_arguments_follow_the_installed_transformers_signature():
    """transformers 5.24 (pinned) and earlier 5.x (e.g. 5.17 on a GPU image) name the arguments differently."""
    from dediffusion.model.decoders.text import _causal_mask_args

    h = torch.zeros(2, 5, 8)

    def new(config, inputs_embeds, attention_mask, cache=None, position_ids=None):
        pass

    def old(config, input_embeds, attention_mask, cache_position, past_key_values, position_ids=None):
        pass

    a = _causal_mask_args(new, "cfg", h)
    assert a.keys() == {"config", "inputs_embeds", "attention_mask", "cache"} and a["inputs_embeds"] is h
    b = _causal_mask_args(old, "cfg", h)
    assert b.keys() == {"config", "input_embeds", "attention_mask", "cache_position", "past_key_values"}
    assert b["past_key_values"] is None and b["cache_position"].tolist() == [0, 1, 2, 3, 4]
    from transformers.masking_utils import create_causal_mask  # the installed one accepts what it is given

    assert set(_causal_mask_args(create_causal_mask, "cfg", h)) <= set(inspect.signature(create_causal_mask).parameters)
