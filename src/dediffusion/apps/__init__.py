"""Text as the interface to language models (paper, Sec. 4.2-4.3): prompts, LLM backends, VQA eval.

Runners beside the library: the De-Diffusion text of an image is handed to any
LLM, with no joint training. Nothing in the library imports this package.
"""
