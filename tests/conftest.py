import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from dediffusion.model.decoders.builtin import BuiltinDecoder, BuiltinDecoderConfig

TINY_DECODER = BuiltinDecoderConfig(resolution=8, text_width=16, text_layers=1, text_heads=2,
                                    unet_channels=(8, 16), norm_groups=4, attention_heads=2)


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory):
    """A tiny random-config built-in decoder saved as a checkpoint folder (fp32)."""
    folder = tmp_path_factory.mktemp("tiny_decoder")
    BuiltinDecoder(TINY_DECODER).save(folder, dtype=torch.float32)
    return folder
