"""Request and response shapes (pydantic): flat models, so the OpenAPI schema reads at a glance."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dediffusion.model.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS

IMAGES_DOC = ("images as base64 strings (plain or data: URIs); one request may carry several, "
              "micro-batched with other requests' images")


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guidance: float = Field(DEFAULT_GUIDANCE, ge=0, le=50, allow_inf_nan=False,
                            description="classifier-free guidance scale (paper: 3.0)")
    steps: int = Field(DEFAULT_STEPS, ge=1, description="DDIM sampling steps (the server caps them)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="starting noise; the same seed gives the same image")
    scale: int = Field(1, ge=1, description="nearest-neighbour upscale of the returned PNG")


class DecodeRequest(Sampling):
    text: str = Field(description="the prompt; any Unicode, control characters become spaces")
    allow_empty: bool = Field(False, description="an empty prompt gives an unconditional sample")


class EncodeJSON(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(description=IMAGES_DOC)
    names: list[str] | None = Field(None, description="optional names, one per image, echoed back and in errors")


class ReconstructJSON(Sampling, EncodeJSON):
    pass


class AskFields(BaseModel):
    """/ask: a question about an image (``image``, base64, or a multipart file) or about a given ``text``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    text: str | None = Field(None, description="use this context instead of an image's De-Diffusion text")
    image: str | None = Field(None, description="base64 image (JSON requests)")
    name: str | None = None


class ExplainJSON(Sampling):
    image: str = Field(description="base64 image")
    name: str | None = None


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong, naming the file where there is one")
    part: str | None = Field(description="which part of the request: files[2], images[0], steps, body, ...")
    name: str | None = Field(None, description="the file name of that part, if it had one")


class Encoded(BaseModel):
    part: str
    name: str
    text: str | None = None
    error: str | None = None


class EncodeResponse(BaseModel):
    results: list[Encoded]
    failed: int


class DecodeResponse(BaseModel):
    text: str = Field(description="the prompt as cleaned and given to the decoder")
    image: str = Field(description="PNG as a data: URI")
    tokens: int
    dropped: int = Field(description="tokens past the decoder's context, not read")
    guidance: float
    steps: int
    seed: int
    seconds: float


class Reconstructed(Encoded):
    image: str | None = Field(None, description="the reconstruction, PNG data: URI")


class ReconstructResponse(BaseModel):
    results: list[Reconstructed]
    failed: int
    guidance: float
    steps: int
    seed: int


class AskResponse(BaseModel):
    context: str = Field(description="the text the LLM read")
    answer: str
    reply: str = Field(description="the LLM's raw reply")


class SceneResponse(BaseModel):
    seed: int
    index: int
    image: str
    human_caption: str
    full_caption: str
