"""Bad input is rejected before anything is uploaded or created, with a message that says what to fix."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from airflow_provider_gemini_batch.batch_input import INLINE_LIMIT_BYTES, records_to_jsonl, validate_jsonl
from airflow_provider_gemini_batch.emulator import EmulatorHandle
from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError
from airflow_provider_gemini_batch.operators import (
    GeminiDownloadResultsOperator,
    GeminiSubmitBatchOperator,
    GeminiUploadFileOperator,
)
from tests.airflow_flow import RecordingTaskInstance, run_task

GOOD = {"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}


def lines(*items: Any) -> list[bytes]:
    return [(item if isinstance(item, str) else json.dumps(item)).encode() + b"\n" for item in items]


class TestJsonlValidation:
    def test_every_bad_line_is_named(self) -> None:
        bad = lines(
            GOOD,
            '{"key": "b", "request": ',  # line 2: broken JSON
            [1, 2],  # line 3: not an object
            {"request": {}},  # line 4: no key
            {"key": "", "request": {}},  # line 5: empty key
            {"key": "a", "request": {}},  # line 6: duplicate of line 1
            {"key": "c", "request": "hi"},  # line 7: request not an object
        )
        with pytest.raises(GeminiBatchInputError) as raised:
            validate_jsonl(bad, "'in.jsonl'")
        message = str(raised.value)
        for expected in (
            "line 2: not valid JSON",
            "line 3: is a JSON list",
            "line 4: missing or empty 'key'",
            "line 5: missing or empty 'key'",
            "line 6: duplicate key 'a' (first on line 1)",
            "line 7: 'request' must be an object, got str",
            "nothing was uploaded",
        ):
            assert expected in message

    def test_empty_input_is_rejected(self) -> None:
        with pytest.raises(GeminiBatchInputError, match="has no requests"):
            validate_jsonl(lines("", "  "), "'empty.jsonl'")

    def test_a_valid_file_is_counted(self) -> None:
        summary = validate_jsonl(lines(GOOD, {**GOOD, "key": "b"}), "x")
        assert summary.request_count == 2

    def test_records_with_a_key_field_become_lines(self) -> None:
        out = io.BytesIO()
        records = [{"ticket_id": 7, "contents": [{"parts": [{"text": "x"}]}]}]
        records_to_jsonl(records, out, key_field="ticket_id")
        assert json.loads(out.getvalue()) == {"key": "7", "request": {"contents": [{"parts": [{"text": "x"}]}]}}


class TestOperatorsRejectBeforeIO:
    def test_upload_operator_names_the_line_and_uploads_nothing(
        self, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_bytes(b"".join(lines(GOOD, {"key": "a", "request": {}})))
        with pytest.raises(GeminiBatchInputError, match="line 2: duplicate key 'a'"):
            run_task(GeminiUploadFileOperator(task_id="up", source=str(path)))
        assert [r for r in gemini_connection.control.requests() if "upload" in r["path"]] == []
        assert path.read_bytes().count(b"\n") == 2, "the user's file is untouched"

    def test_submit_with_raw_records_names_them_and_uploads_and_creates_nothing(
        self, gemini_connection: EmulatorHandle
    ) -> None:
        rows = [{"key": "1", "text": "hello"}, {"key": "2", "text": "bye"}]
        operator = GeminiSubmitBatchOperator(task_id="s", model="gemini-2.5-flash", requests=rows)
        with pytest.raises(GeminiBatchInputError) as raised:
            run_task(operator)
        message = str(raised.value)
        assert re.search(
            r"record 1: 'request' has .*\(it has 'text'\); record 2: 'request' has .*\(it has 'text'\)", message
        )
        assert gemini_connection.control.requests() == [], "nothing was uploaded or created"

    def test_upload_of_raw_lines_names_them_and_uploads_nothing(
        self, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        path = tmp_path / "rows.jsonl"
        path.write_bytes(b"".join(lines(GOOD, {"key": "1", "text": "hello"})))
        with pytest.raises(GeminiBatchInputError, match=r"line 2: no 'request' object \(the line has 'key', 'text'\)"):
            run_task(GeminiUploadFileOperator(task_id="up", source=str(path)))
        assert gemini_connection.control.requests() == []

    def test_submit_with_bad_records_creates_nothing(self, gemini_connection: EmulatorHandle) -> None:
        operator = GeminiSubmitBatchOperator(task_id="s", model="gemini-2.5-flash", requests=[GOOD, {"request": {}}])
        with pytest.raises(GeminiBatchInputError, match="record 2: missing or empty 'key'"):
            run_task(operator)
        assert gemini_connection.control.created_count() == 0

    @pytest.mark.parametrize("model", ["../models/x", "gemini?key=1", "a&b"])
    def test_bad_model_names(self, gemini_connection: EmulatorHandle, model: str) -> None:
        with pytest.raises(GeminiBatchInputError, match="model"):
            run_task(GeminiSubmitBatchOperator(task_id="s", model=model, requests=[GOOD]))
        assert gemini_connection.control.created_count() == 0

    def test_exactly_one_input_is_required_at_parse_time(self) -> None:
        with pytest.raises(GeminiBatchInputError, match="exactly one of"):
            GeminiSubmitBatchOperator(task_id="s", model="m", requests=[GOOD], input_file="files/x")

    def test_inline_over_20_mb_goes_through_a_file(self, gemini_connection: EmulatorHandle) -> None:
        padding = "x" * 100_000
        count = INLINE_LIMIT_BYTES // 100_000 + 5
        records = [{"key": f"k{i}", "request": {"contents": [{"parts": [{"text": padding}]}]}} for i in range(count)]
        operator = GeminiSubmitBatchOperator(
            task_id="s", model="gemini-2.5-flash", requests=records, wait_for_completion=False
        )
        ti = RecordingTaskInstance()
        run_task(operator, {"ti": ti})
        (job,) = gemini_connection.control.batches()
        uploads = [r for r in gemini_connection.control.requests() if r["path"].startswith("/upload/")]
        assert uploads, "the requests were uploaded as a file, not sent inline"
        assert job["name"].startswith("batches/")
        assert ti.xcom["input_file"].startswith("files/"), "cleanup tasks can find the uploaded file"

    def test_results_cannot_escape_the_destination(self, gemini_connection: EmulatorHandle, tmp_path: Path) -> None:
        from airflow_provider_gemini_batch.hooks import GeminiBatchHook

        hook = GeminiBatchHook()
        batch = hook.create_batch("gemini-2.5-flash", requests=[GOOD], display_name="../../etc/passwd")
        operator = GeminiDownloadResultsOperator(task_id="d", batch_name=batch.name, destination=str(tmp_path / "out"))
        manifest, _ = run_task(operator)
        written = Path(manifest["path"])
        assert written.parent == tmp_path / "out"
        assert written.name.startswith("etc_passwd-")
        assert manifest["succeeded_count"] == 1


class TestTheHookChecksRequestsOfTheJobsKind:
    """``kind`` tells the hook which request shape the job needs; without it either shape passes."""

    EMBED: ClassVar[dict[str, Any]] = {"key": "e", "request": {"content": {"parts": [{"text": "hi"}]}}}

    def test_prepare_input_refuses_generation_requests_for_an_embedding_job(
        self, gemini_connection: EmulatorHandle
    ) -> None:
        from airflow_provider_gemini_batch.hooks import GeminiBatchHook

        with pytest.raises(GeminiBatchInputError, match=r"record 1: 'request' has no 'content' \(it has 'contents'"):
            GeminiBatchHook().prepare_input(requests=[GOOD], kind="embed")
        assert GeminiBatchHook().prepare_input(requests=[self.EMBED], kind="embed").requests == [self.EMBED]
        assert gemini_connection.control.requests() == []

    def test_upload_records_and_upload_jsonl_check_the_kind_before_uploading(
        self, gemini_connection: EmulatorHandle, tmp_path: Path
    ) -> None:
        from airflow_provider_gemini_batch.hooks import GeminiBatchHook

        hook = GeminiBatchHook()
        with pytest.raises(GeminiBatchInputError, match="record 1: 'request' has no 'contents'"):
            hook.upload_records([self.EMBED], kind="generate")
        path = tmp_path / "in.jsonl"
        path.write_bytes(b"".join(lines(self.EMBED)))
        with pytest.raises(GeminiBatchInputError, match="line 1: 'request' has no 'contents'"):
            hook.upload_jsonl(path, kind="generate")
        with pytest.raises(GeminiBatchInputError, match="line 1: 'request' has no 'contents'"):
            hook.prepare_input(input_path=path, kind="generate")
        assert gemini_connection.control.requests() == []
        assert hook.upload_jsonl(path, kind="embed").name.startswith("files/")


def test_an_input_file_over_2_gb_is_refused_before_reading_it(
    gemini_connection: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as sparse:
        sparse.truncate(2 * 1024**3 + 1)  # Sparse: no disk is used.
    with pytest.raises(GeminiBatchInputError, match=r"over the Files API's limit of 2147483648 bytes \(2 GB\)"):
        run_task(GeminiUploadFileOperator(task_id="up", source=str(path)))
    assert gemini_connection.control.requests() == []


def test_the_inline_limit_is_measured_on_the_wire_shape() -> None:
    from airflow_provider_gemini_batch.batch_input import inline_body_bytes

    items = [{"key": f"k{i}", "request": {"content": {"parts": [{"text": "x"}]}}} for i in range(1000)]
    jsonl_bytes = sum(len(json.dumps(item, separators=(",", ":"))) for item in items)
    assert inline_body_bytes(items) > jsonl_bytes + 1000 * len('"metadata":{}'), "each key moves into metadata"
