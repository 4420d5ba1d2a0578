"""Fixtures for the emulator's own tests: one real server per module, reset per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from inference.emulator import EmulatorServer

ACCOUNT = "acct-test"
AUTH = {"Authorization": "Bearer test-token"}

LLAMA = "@cf/meta/llama-3.1-8b-instruct-fp8"
FLUX = "@cf/black-forest-labs/flux-1-schnell"
SDXL = "@cf/stabilityai/stable-diffusion-xl-base-1.0"
PHOENIX = "@cf/leonardo/phoenix-1.0"
MELOTTS = "@cf/myshell-ai/melotts"
AURA = "@cf/deepgram/aura-1"
WHISPER = "@cf/openai/whisper"
WHISPER_TURBO = "@cf/openai/whisper-large-v3-turbo"
BGE_BASE = "@cf/baai/bge-base-en-v1.5"
DISTILBERT = "@cf/huggingface/distilbert-sst-2-int8"

# Models for tasks the seed catalog does not cover yet, registered at runtime so these
# tests do not depend on how far the shared catalog has grown.
EXTRA_MODELS = {
    "@cf/baai/bge-small-en-v1.5": "text-embeddings",
    "@cf/baai/bge-large-en-v1.5": "text-embeddings",
    "@cf/baai/bge-m3": "text-embeddings",
    "@cf/microsoft/resnet-50": "image-classification",
    "@cf/facebook/detr-resnet-50": "object-detection",
    "@cf/meta/m2m100-1.2b": "translation",
    "@cf/test/summarizer": "summarization",  # every summarization model is retired
    "@cf/llava-hf/llava-1.5-7b-hf": "image-to-text",
    "@cf/test/image-text-to-text": "image-text-to-text",
    "@cf/test/multimodal-embeddings": "multimodal-embeddings",
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(models=EXTRA_MODELS) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture
def run(emulator: EmulatorServer) -> Callable[..., requests.Response]:
    """POST a model input to the emulator's run endpoint."""

    def _run(model: str, payload: Any = None, *, headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        return requests.post(
            emulator.run_url(ACCOUNT, model),
            headers=AUTH if headers is None else headers,
            json=payload if payload is not None else {},
            timeout=30,
            **kwargs,
        )

    return _run


def parse_sse(lines: list[bytes]) -> list[str]:
    """The ``data:`` payloads of an event stream, in order."""
    return [line.decode()[len("data: "):] for line in lines if line.startswith(b"data: ")]
