"""dediffusion: De-Diffusion (Wei et al., CVPR 2024) - images as text, and back."""
from dediffusion.model.autoencoder import DeDiffusion, DeDiffusionConfig, load_dediffusion
from dediffusion.model.decoders import BuiltinDecoder, BuiltinDecoderConfig, load_decoder
from dediffusion.model.encoder import EncoderConfig
from dediffusion.model.sampling import generate
from dediffusion.pretrained import shipped
from dediffusion.model.text_head import TextHeadConfig

__version__ = "0.1.0"
__all__ = ["BuiltinDecoder", "BuiltinDecoderConfig", "DeDiffusion", "DeDiffusionConfig", "EncoderConfig",
           "TextHeadConfig", "generate", "load_decoder", "load_dediffusion", "shipped"]
