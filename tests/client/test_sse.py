"""The SSE parser and StreamResult's accumulation, on recorded bodies."""

from __future__ import annotations

import json

import pytest

from inference.client import SSEEvent, StreamResult, parse_sse
from inference.exceptions import UpstreamProtocolError

from .conftest import sse_body


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


def stream_of(body: bytes, chunk: int = 7) -> StreamResult:
    return StreamResult(split_every(body, chunk))


# -- parse_sse ----------------------------------------------------------------------------


def test_parse_basic_events():
    body = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert list(parse_sse(body)) == [SSEEvent('{"a":1}'), SSEEvent("[DONE]")]


def test_multiline_data_comments_fields_and_bom():
    body = (
        "\ufeff: keep-alive comment\n"
        "event: message\n"
        "id: 7\n"
        "retry: 1000\n"
        "data: line one\n"
        "data:line two\n"
        "unknown: ignored\n"
        "\n"
        ": another comment\n"
        "\n"  # a blank line with no data dispatches nothing
        "data\n"  # a field with no colon: empty data
        "\n"
    )
    events = list(parse_sse(body))
    assert events == [
        SSEEvent("line one\nline two", event="message", id="7"),
        SSEEvent("", id="7"),
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1000])
def test_any_line_ending_and_any_chunking(newline, chunk):
    body = newline.join(
        [
            b'data: {"response":"h\xc3\xa9"}',
            b"",
            b"data: a",
            b"data: b",
            b"",
            b"data: [DONE]",
            b"",
            b"",
        ]
    )
    events = list(parse_sse(split_every(body, chunk)))
    assert [e.data for e in events] == ['{"response":"hé"}', "a\nb", "[DONE]"]
    assert all(e.complete for e in events)


def test_crlf_split_across_chunks_is_not_a_blank_line():
    # requests' iter_lines turns this into an extra blank line and splits the event.
    chunks = [b"data: a\r", b"\ndata: b\r\n\r\n"]
    assert [e.data for e in parse_sse(chunks)] == ["a\nb"]


def test_unicode_line_separators_inside_json_are_not_newlines():
    # str.splitlines would break on U+2028 / \x1c; SSE only knows CR and LF.
    payload = json.dumps({"response": "a\u2028b\x1cc"}, ensure_ascii=False)
    events = list(parse_sse(f"data: {payload}\n\n".encode()))
    assert json.loads(events[0].data)["response"] == "a\u2028b\x1cc"


def test_event_at_eof_without_blank_line_is_marked_incomplete():
    events = list(parse_sse(b'data: {"a":1}\n\ndata: {"b":2}\n'))
    assert events == [SSEEvent('{"a":1}'), SSEEvent('{"b":2}', complete=False)]
    events = list(parse_sse(b'data: {"a":1}\n\ndata: {"resp'))
    assert events[-1] == SSEEvent('{"resp', complete=False)


def test_parse_accepts_str_and_iterables_of_str():
    assert [e.data for e in parse_sse(["da", "ta: x\n", "\n"])] == ["x"]


# -- StreamResult --------------------------------------------------------------------------


def test_text_usage_done_and_padding():
    body = sse_body(
        {"response": "Hel", "p": "abcd"},
        {"response": "lo", "p": "ab"},
        {"response": " world"},
        {
            "response": "",
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 50,
                "total_tokens": 60,
                "neurons": 4.2,
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        },
    )
    stream = stream_of(body, chunk=3)
    assert stream.done is False
    events = list(stream)
    assert len(events) == 4 and stream.event_count == 4
    assert stream.text == "Hello world"
    assert stream.usage["neurons"] == 4.2
    assert stream.usage["prompt_tokens_details"] == {"cached_tokens": 3}
    assert stream.done is True
    assert stream.error is None


def test_usage_from_last_event_that_has_it():
    body = sse_body(
        {"response": "a", "usage": {"total_tokens": 1}},
        {"response": "b", "usage": None},
        {"response": "", "usage": {"total_tokens": 9}},
        {"response": "c"},
    )
    stream = stream_of(body).consume()
    assert stream.usage == {"total_tokens": 9}
    assert stream.text == "abc"


def test_numeric_response_is_text():
    stream = stream_of(
        sse_body({"response": 4}, {"response": 2.5}, {"response": None}, {"response": True})
    )
    assert stream.consume().text == "42.5"


def test_openai_style_deltas():
    body = sse_body(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant"}}],
        },
        {"choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    )
    stream = stream_of(body).consume()
    assert stream.text == "Hi there"
    assert stream.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_tool_call_fragments_merged_by_index():
    body = sse_body(
        {
            "response": "",
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
        },
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz"'},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": ': "UTC"}'}}]},
        {"response": "", "usage": {"total_tokens": 3}},
    )
    stream = stream_of(body, chunk=11).consume()
    assert stream.tool_calls == [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "index": 1,
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
        },
    ]
    assert json.loads(stream.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}


def test_openai_style_tool_call_deltas():
    body = sse_body(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"x"'}}
                        ]
                    }
                }
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
    )
    stream = stream_of(body).consume()
    assert stream.tool_calls == [
        {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]


def test_whole_tool_calls_without_index():
    # Older Workers AI models send complete calls with object arguments.
    body = sse_body(
        {
            "response": "",
            "tool_calls": [{"name": "a", "arguments": {"q": 1}}, {"name": "b", "arguments": {}}],
        },
    )
    stream = stream_of(body).consume()
    assert stream.tool_calls == [
        {"index": 0, "name": "a", "arguments": {"q": 1}},
        {"index": 1, "name": "b", "arguments": {}},
    ]


def test_missing_done_raises_but_keeps_partial_text_and_usage():
    body = sse_body(
        {"response": "par"}, {"response": "tial", "usage": {"total_tokens": 4}}, done=False
    )
    stream = stream_of(body)
    received = []
    with pytest.raises(UpstreamProtocolError, match="cut short") as info:
        for event in stream:
            received.append(event)
    assert len(received) == 2
    assert stream.text == "partial"
    assert stream.usage == {"total_tokens": 4}
    assert stream.done is False
    assert stream.error is info.value
    assert info.value.retryable is False
    assert list(stream) == []  # finished: iterating again yields nothing


def test_body_ending_mid_json_is_cut_short_not_invalid_json():
    stream = stream_of(b'data: {"response":"ok"}\n\ndata: {"response":"tru')
    with pytest.raises(UpstreamProtocolError, match="cut short"):
        stream.consume()
    assert stream.text == "ok"


def test_done_without_trailing_blank_line_is_accepted():
    stream = stream_of(b'data: {"response":"ok"}\n\ndata: [DONE]')
    assert stream.consume().done is True


def test_invalid_json_in_a_data_line():
    stream = stream_of(b'data: {"response":"ok"}\n\ndata: {oops}\n\ndata: [DONE]\n\n')
    with pytest.raises(UpstreamProtocolError, match="invalid JSON") as info:
        stream.consume()
    assert info.value.body == "{oops}"
    assert stream.text == "ok"


def test_non_object_event_is_protocol_error():
    with pytest.raises(UpstreamProtocolError, match="not a JSON object"):
        stream_of(b"data: [1, 2]\n\ndata: [DONE]\n\n").consume()


def test_nothing_after_done_is_read():
    body = sse_body({"response": "a"}) + b'data: {"response": "ignored"}\n\n'
    stream = stream_of(body)
    assert [e["response"] for e in stream] == ["a"]
    assert stream.text == "a"


def test_close_early_is_not_an_error_and_calls_on_close():
    closed = []
    stream = StreamResult(
        split_every(sse_body({"response": "a"}, {"response": "b"}), 5),
        on_close=lambda: closed.append(1),
    )
    with stream:
        assert next(stream)["response"] == "a"
    assert closed == [1]
    assert list(stream) == []
    assert stream.text == "a" and stream.done is False and stream.error is None
    stream.close()
    assert closed == [1]  # idempotent


def test_finishing_closes():
    closed = []
    StreamResult([sse_body({"response": "a"})], on_close=lambda: closed.append(1)).consume()
    assert closed == [1]
