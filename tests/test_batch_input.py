"""Validation looks inside each ``request``: a line the service would fail is named before any upload.

Pure functions over plain values: no emulator, no Airflow. The operators' and hook's use of them
(nothing uploaded, nothing created) is in ``tests/operators/test_input_validation.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_gemini_batch.batch_input import MAX_REPORTED_PROBLEMS, records_to_jsonl, validate_jsonl
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.models import BatchKind

GENERATE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": 0}}
EMBED = {"content": {"parts": [{"text": "hi"}]}, "taskType": "RETRIEVAL_DOCUMENT"}


def lines(*items: Any) -> list[bytes]:
    return [(item if isinstance(item, str) else json.dumps(item)).encode() + b"\n" for item in items]


def requests(*bodies: Any) -> list[bytes]:
    """One line per request body, keyed k1, k2, ..."""
    return lines(*({"key": f"k{number}", "request": body} for number, body in enumerate(bodies, start=1)))


def problems(kind: BatchKind | None, *bodies: Any) -> str:
    with pytest.raises(GeminiBatchInputError) as raised:
        validate_jsonl(requests(*bodies), "'in.jsonl'", kind=kind)
    return str(raised.value)


class TestGenerateRequests:
    def test_a_full_generate_content_request_passes(self) -> None:
        assert validate_jsonl(requests(GENERATE, GENERATE), "x", kind="generate").request_count == 2

    def test_a_request_without_contents_is_named_with_what_to_add(self) -> None:
        message = problems("generate", GENERATE, {"generationConfig": {"temperature": 0}})
        assert "line 2: 'request' has no 'contents'" in message
        assert "line 1" not in message
        assert '"contents": [{"parts": [{"text": ' in message, "the message shows the shape to write"

    @pytest.mark.parametrize(
        ("contents", "expected"),
        [
            ([], "'request.contents' is empty"),
            ("hello", "'request.contents' must be a list of objects, got str"),
            ({"parts": [{"text": "x"}]}, "'request.contents' must be a list of objects, got dict"),
            (["hello"], "'request.contents[0]' must be an object with 'parts', got str"),
            ([{"role": "user"}], "'request.contents[0]' has no 'parts'"),
            ([{"parts": [{"text": "a"}]}, {"parts": {"text": "b"}}], "'request.contents[1].parts' must be a list"),
        ],
    )
    def test_malformed_contents_are_named_by_line_and_position(self, contents: Any, expected: str) -> None:
        assert f"line 1: {expected}" in problems("generate", {"contents": contents})

    def test_an_embedding_request_sent_as_generation_says_which_operator_fits(self) -> None:
        message = problems("generate", EMBED)
        assert "line 1: 'request' has no 'contents'" in message
        assert "it has 'content': an embedding request" in message


class TestEmbedRequests:
    def test_an_embed_content_request_passes(self) -> None:
        assert validate_jsonl(requests(EMBED), "x", kind="embed").request_count == 1

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"taskType": "RETRIEVAL_DOCUMENT"}, "'request' has no 'content'"),
            ({"content": "hello"}, "'request.content' must be an object with 'parts', got str"),
            ({"content": {"text": "hello"}}, "'request.content' has no 'parts'"),
            ({"content": {"parts": "hello"}}, "'request.content.parts' must be a list"),
        ],
    )
    def test_malformed_content_is_named(self, body: Any, expected: str) -> None:
        assert f"line 1: {expected}" in problems("embed", body)

    def test_a_generation_request_sent_as_embedding_says_which_operator_fits(self) -> None:
        message = problems("embed", GENERATE)
        assert "line 1: 'request' has no 'content'" in message
        assert "it has 'contents': a generation request" in message


class TestUnknownKind:
    """An upload for a later submit does not know its job's kind: either request shape passes."""

    def test_either_shape_passes(self) -> None:
        assert validate_jsonl(requests(GENERATE, EMBED), "x").request_count == 2

    def test_neither_shape_is_named(self) -> None:
        message = problems(None, {"text": "hello"})
        assert "line 1: 'request' has neither 'contents' (a generation request) nor 'content' (an embedding" in message

    def test_the_shape_present_is_checked(self) -> None:
        assert "line 1: 'request.contents' is empty" in problems(None, {"contents": []})
        assert "line 1: 'request.content' has no 'parts'" in problems(None, {"content": {}})


class TestRawRecordsWhereRequestsAreExpected:
    def test_a_raw_line_is_named_with_its_fields_and_what_is_missing(self) -> None:
        with pytest.raises(GeminiBatchInputError) as raised:
            validate_jsonl(lines({"key": "1", "text": "hello"}), "'rows.jsonl'", kind="generate")
        message = str(raised.value)
        assert "line 1: no 'request' object (the line has 'key', 'text')" in message
        assert "nothing was uploaded" in message

    def test_raw_records_are_named_before_anything_is_written_for_them(self) -> None:
        out = io.BytesIO()
        with pytest.raises(GeminiBatchInputError) as raised:
            records_to_jsonl([{"key": "1", "text": "hello"}, {"key": 2, "text": "bye"}], out, kind="generate")
        message = str(raised.value)
        assert "record 1: 'request' has no 'contents' (it has 'text')" in message
        assert "record 2: 'request' has no 'contents' (it has 'text')" in message
        assert out.getvalue() == b""

    def test_flat_records_holding_a_request_body_still_become_lines(self) -> None:
        out = io.BytesIO()
        records_to_jsonl([{"id": 7, **EMBED}], out, key_field="id", kind="embed")
        assert json.loads(out.getvalue()) == {"key": "7", "request": EMBED}

    def test_field_names_shown_are_few_and_short(self) -> None:
        record = {"key": "1", **{f"column_{'x' * 200}_{number}": number for number in range(50)}}
        message = problems_of_records([record])
        assert len(message) < 1200
        assert "and 45 more" in message


def problems_of_records(records: list[Any], kind: BatchKind | None = "generate") -> str:
    with pytest.raises(GeminiBatchInputError) as raised:
        records_to_jsonl(records, io.BytesIO(), kind=kind)
    return str(raised.value)


class TestMessages:
    def test_at_most_max_reported_problems_are_listed_and_the_rest_counted(self) -> None:
        message = problems("generate", *([{}] * (MAX_REPORTED_PROBLEMS + 5)))
        assert f"line {MAX_REPORTED_PROBLEMS}:" in message
        assert f"line {MAX_REPORTED_PROBLEMS + 1}:" not in message
        assert f"has {MAX_REPORTED_PROBLEMS + 5} problem(s)" in message
        assert "and 5 more" in message

    def test_broken_json_is_named_with_the_parser_reason_but_not_its_line_1(self) -> None:
        with pytest.raises(GeminiBatchInputError) as raised:
            validate_jsonl([b'{"key": "a", "request": \n'], "x", kind="generate")
        message = str(raised.value)
        assert "line 1: not valid JSON (" in message
        assert "line 1 column" not in message, "the parser's own position would contradict the file's line"

    def test_a_huge_bad_key_is_not_echoed_whole(self) -> None:
        message = problems_of_records([{"key": ["x" * 10_000], **GENERATE}])
        assert len(message) < 1000

    def test_the_shape_hint_follows_the_kind(self) -> None:
        assert '"request": {"content": {"parts":' in problems("embed", {})
        assert '"request": {"contents": [{"parts":' in problems("generate", {})


class TestStreaming:
    def test_lines_are_read_one_at_a_time_from_any_iterable(self) -> None:
        pulled = 0

        def source() -> Iterator[bytes]:
            nonlocal pulled
            for number in range(10_000):
                pulled += 1
                yield json.dumps({"key": f"k{number}", "request": GENERATE}).encode() + b"\n"

        assert validate_jsonl(source(), "stream", kind="generate").request_count == 10_000
        assert pulled == 10_000

    def test_records_are_written_as_they_are_read(self) -> None:
        written: list[int] = []

        class Out(io.BytesIO):
            def write(self, data: Any) -> int:
                written.append(len(data))
                return super().write(data)

        def records() -> Iterator[dict[str, Any]]:
            for number in range(3):
                yield {"key": number, **GENERATE}
                assert len(written) == number + 1, "each record is written before the next is read"

        assert records_to_jsonl(records(), Out(), kind="generate").request_count == 3
