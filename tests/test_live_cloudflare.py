"""Against real Cloudflare: opt-in, skipped unless CLOUDFLARE_API_TOKEN and
CLOUDFLARE_ACCOUNT_ID are set (no network here, so CI skips them)."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from inference.client import BinaryResult, JSONResult, StreamResult, WorkersAIClient
from inference.exceptions import UpstreamError

TOKEN = os.environ.get("CLOUDFLARE_API_TOKEN", "")
ACCOUNT = os.environ.get("CLOUDFLARE_ACCOUNT_ID", "")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (TOKEN and ACCOUNT), reason="set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID"),
]


@pytest.fixture
def client():
    with WorkersAIClient(
        ACCOUNT,
        api_token=TOKEN,
        base_url=os.environ.get("CLOUDFLARE_BASE_URL", "https://api.cloudflare.com/client/v4"),
    ) as c:
        yield c


def test_text_generation_envelope_unwrapped(client):
    result = client.run("@cf/meta/llama-3.1-8b-instruct-fp8", {"prompt": "Say hi", "max_tokens": 8})
    assert isinstance(result, JSONResult)
    assert isinstance(result.result["response"], str)


def test_stream_carries_usage_in_last_event(client):
    stream = client.run("@cf/meta/llama-3.1-8b-instruct-fp8", {"prompt": "Count to 3", "max_tokens": 16, "stream": True})
    assert isinstance(stream, StreamResult)
    stream.consume()
    assert stream.done and stream.text
    assert stream.usage and stream.usage["total_tokens"] > 0


def test_raw_png_bytes(client):
    result = client.run("@cf/bytedance/stable-diffusion-xl-lightning", {"prompt": "a red square"})
    assert isinstance(result, BinaryResult) and result.content_type == "image/png"
    Image.open(io.BytesIO(result.content)).verify()


def test_unknown_model_is_a_non_retryable_error(client):
    with pytest.raises(UpstreamError) as info:
        client.run("@cf/nobody/no-such-model", {"prompt": "x"})
    assert info.value.retryable is False and info.value.status_code in (400, 404)
