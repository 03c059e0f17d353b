"""Stable Diffusion as the frozen decoder, on tiny random SD pipelines saved in the diffusers layout.

The adapter must compute exactly what diffusers computes: prompt states as ``encode_prompt``,
the latent-space loss with the VAE scaling factor and the scheduler's prediction type, and
samples as ``StableDiffusionPipeline`` with CFG.
"""
import shutil

import pytest
import torch
import torch.nn.functional as F

from dediffusion.model.decoders import StableDiffusionOptions, load_decoder
from dediffusion.model.sampling import generate, sampling_scheduler

from .tiny_models import IMAGE, save_tiny_sd

PROMPTS = ["a photo of a red cat on a sofa", ""]


@pytest.fixture(scope="session", params=["epsilon", "v_prediction"])
def sd_dir(request, tmp_path_factory):
    """epsilon: SD 1.x-like (pads with EOS); v_prediction: SD 2.x-like (pads with '!')."""
    v = request.param == "v_prediction"
    return save_tiny_sd(tmp_path_factory.mktemp(f"sd_{request.param}"), request.param, pad_token="!" if v else None)


def _pipeline(decoder):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=decoder.vae, text_encoder=decoder.text_encoder, tokenizer=decoder.tokenizer,
                                   unet=decoder.unet, scheduler=sampling_scheduler(decoder), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def test_reads_the_folder_as_stable_diffusion(sd_dir):
    dec = load_decoder(sd_dir)
    expected = "v_prediction" if "v_prediction" in sd_dir.name else "epsilon"
    assert dec.kind == "stable_diffusion" and dec.prediction_type == expected
    assert dec.resolution == IMAGE and dec.latent_shape(2) == (2, 4, IMAGE // 2, IMAGE // 2)
    assert len(dec.tokenizer) == 49408 and dec.context_length == 77
    assert dec.tokenizer.pad_token_id == (0 if expected == "v_prediction" else 49407)


def test_text_states_equal_the_pipelines_prompt_encoding(sd_dir):
    dec = load_decoder(sd_dir)
    ours = dec.text_states(PROMPTS)
    theirs, _ = _pipeline(dec).encode_prompt(PROMPTS, "cpu", 1, False)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # one-hot token vectors through the embedding table give the same states as the prompt
    ids = dec.tokenize(PROMPTS[:1])[0]
    one_hot = F.one_hot(torch.tensor([ids]), len(dec.tokenizer)).float()
    assert torch.allclose(dec.text_states_from_embeds(one_hot @ dec.token_embedding), ours[:1], atol=1e-5)
    # 75 content tokens + SOS + EOS fill the 77 positions; 76 do not fit
    assert dec.text_states_from_embeds(torch.randn(1, 75, 16)).shape == (1, 77, 16)
    with pytest.raises(ValueError, match="do not fit"):
        dec.text_states_from_embeds(torch.randn(1, 76, 16))


def test_loss_is_the_latent_diffusion_loss_with_scaling_factor_and_prediction_type(sd_dir):
    dec = load_decoder(sd_dir)
    images, t = torch.rand(2, 3, IMAGE, IMAGE), torch.tensor([100, 800])
    noise = torch.randn(dec.latent_shape(2))
    cond = dec.text_states(PROMPTS)
    with torch.no_grad():
        x0 = dec.vae.encode(images * 2 - 1).latent_dist.mean * 0.5  # the fixture's scaling_factor
        x_t = dec.scheduler.add_noise(x0, noise, t)
        pred = dec.unet(x_t, t, encoder_hidden_states=cond).sample
        ab = dec.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        target = noise if dec.prediction_type == "epsilon" else ab.sqrt() * noise - (1 - ab).sqrt() * x0
        expected = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        assert torch.allclose(dec.to_model_space(images), x0)
        assert torch.allclose(dec.loss(images, cond, t, noise), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="does not match the latents"):
        dec.loss(images, cond, t, torch.randn(2, 3, IMAGE, IMAGE))


def test_sampling_with_cfg_equals_the_diffusers_pipeline(sd_dir):
    dec = load_decoder(sd_dir)
    ours = generate(dec, PROMPTS[:1], steps=3, guidance=3.0, seed=0)
    latents = torch.randn(dec.latent_shape(1), generator=torch.Generator().manual_seed(0))
    theirs = _pipeline(dec)(PROMPTS[:1], num_inference_steps=3, guidance_scale=3.0, latents=latents,
                            output_type="pt").images
    assert ours.shape == (1, 3, IMAGE, IMAGE)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, generate(dec, PROMPTS[:1], steps=3, guidance=1.0, seed=0), atol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients_and_bf16_stays_close(sd_dir):
    images, t = torch.rand(2, 3, IMAGE, IMAGE), torch.tensor([300, 700])
    noise = torch.randn(2, 4, IMAGE // 2, IMAGE // 2)
    base = torch.randn(2, 6, 16) * 0.02  # stands in for the soft tokens
    results = {}
    for name, opts in {"plain": StableDiffusionOptions(),
                       "checkpointed": StableDiffusionOptions(gradient_checkpointing=True),
                       "bf16": StableDiffusionOptions(precision="bf16")}.items():
        dec = load_decoder(sd_dir, opts).requires_grad_(False)
        tokens = base.clone().requires_grad_(True)
        loss = dec.loss(images, dec.text_states_from_embeds(tokens), t, noise).mean()
        loss.backward()
        assert all(p.grad is None for p in dec.parameters())
        results[name] = (loss.item(), tokens.grad)
    assert results["checkpointed"][0] == pytest.approx(results["plain"][0], rel=1e-6)
    assert torch.allclose(results["checkpointed"][1], results["plain"][1], rtol=1e-4, atol=1e-8)
    assert results["bf16"][0] == pytest.approx(results["plain"][0], rel=0.05)
    assert F.cosine_similarity(results["bf16"][1].flatten(), results["plain"][1].flatten(), dim=0) > 0.9


def test_resolution_option_changes_the_latent_size(sd_dir):
    dec = load_decoder(sd_dir, StableDiffusionOptions(resolution=2 * IMAGE))
    assert dec.resolution == 2 * IMAGE and dec.latent_shape(1) == (1, 4, IMAGE, IMAGE)
    loss = dec.loss(torch.rand(1, 3, 2 * IMAGE, 2 * IMAGE), dec.text_states(["a cat"]), torch.tensor([500]))
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    with pytest.raises(ValueError, match="not a multiple of the VAE factor"):
        load_decoder(sd_dir, StableDiffusionOptions(resolution=IMAGE + 1))


def test_unknown_precision_and_bad_folders_are_one_line_errors(sd_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown precision"):
        load_decoder(sd_dir, StableDiffusionOptions(precision="int8"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a decoder"):
        load_decoder(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot load the Stable Diffusion 'text_encoder'"):
        load_decoder(tmp_path / "broken")
    shutil.copytree(sd_dir, tmp_path / "no_tokenizer")
    shutil.rmtree(tmp_path / "no_tokenizer" / "tokenizer")
    with pytest.raises(ValueError, match="the tokenizer has 2 tokens but the text encoder embeds 49408"):
        load_decoder(tmp_path / "no_tokenizer")
