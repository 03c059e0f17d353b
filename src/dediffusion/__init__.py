"""dediffusion: De-Diffusion (Wei et al., CVPR 2024) - images as text, and back."""
from .autoencoder import DeDiffusion, DeDiffusionConfig, load_dediffusion
from .decoders import BuiltinDecoder, BuiltinDecoderConfig, load_decoder
from .encoder import EncoderConfig
from .generate import generate
from .pretrained import shipped
from .text_head import TextHeadConfig

__version__ = "0.1.0"
__all__ = ["BuiltinDecoder", "BuiltinDecoderConfig", "DeDiffusion", "DeDiffusionConfig", "EncoderConfig",
           "TextHeadConfig", "generate", "load_decoder", "load_dediffusion", "shipped"]
