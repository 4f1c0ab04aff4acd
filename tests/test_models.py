"""The models accept the service's Operation and File shapes as ``docs/protocol.md`` gives them ("The Operation")."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_gemini_batch.models import Batch, BatchResult, BatchState, BatchStats, GeminiFile

PENDING = {
    "name": "batches/4m85",
    "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": "models/gemini-2.5-flash",
        "displayName": "test-batch-job",
        "createTime": "2025-12-10T18:27:01.407650525Z",
        "updateTime": "2025-12-10T18:27:01.407650525Z",
        "batchStats": {"requestCount": "3", "pendingRequestCount": "3"},
        "state": "BATCH_STATE_PENDING",
        "name": "batches/4m85",
    },
}

ITEMS = [
    {"response": {"candidates": [{"content": {"parts": [{"text": "a"}], "role": "model"}}]}, "metadata": {"key": "k1"}},
    {"error": {"code": 3, "message": "bad", "status": "INVALID_ARGUMENT"}, "metadata": {"key": "k2"}},
]

SUCCEEDED_INLINE = {
    "name": "batches/4m85",
    "metadata": {
        **PENDING["metadata"],  # type: ignore[dict-item]
        "endTime": "2025-12-10T18:30:00Z",
        "batchStats": {"requestCount": "3", "successfulRequestCount": "2", "failedRequestCount": "1"},
        "state": "BATCH_STATE_SUCCEEDED",
        "output": {"inlinedResponses": {"inlinedResponses": ITEMS}},
    },
    "done": True,
    "response": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
        "inlinedResponses": {"inlinedResponses": ITEMS},
    },
}


def test_pending_operation_parses_with_string_counters_and_nanosecond_times() -> None:
    batch = Batch.model_validate(PENDING)
    assert batch.name == "batches/4m85"
    assert batch.state is BatchState.PENDING
    assert not batch.state.is_terminal
    assert batch.display_name == "test-batch-job"
    assert batch.batch_stats == BatchStats(request_count=3, pending_request_count=3)
    assert batch.create_time == datetime(2025, 12, 10, 18, 27, 1, 407650, tzinfo=timezone.utc)
    assert not batch.done
    assert batch.kind == "generate"


def test_succeeded_inline_operation_carries_results_and_counts() -> None:
    batch = Batch.model_validate(SUCCEEDED_INLINE)
    assert batch.state.is_terminal
    assert batch.done
    assert batch.batch_stats.failed_request_count == 1
    assert batch.batch_stats.completed_request_count == 3
    results = [BatchResult.from_inline(item) for item in batch.inlined_responses or []]
    assert [(r.key, r.text, r.succeeded) for r in results] == [("k1", "a", True), ("k2", None, False)]


def test_file_job_output_and_input_are_read_from_metadata() -> None:
    operation = {
        "name": "batches/f1",
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch",
            "state": "BATCH_STATE_SUCCEEDED",
            "inputConfig": {"fileName": "files/in"},
            "output": {"responsesFile": "files/batch-f1"},
        },
        "done": True,
    }
    batch = Batch.model_validate(operation)
    assert (batch.input_file, batch.responses_file, batch.kind) == ("files/in", "files/batch-f1", "embed")


def test_failed_operation_reads_the_top_level_error() -> None:
    operation = {"name": "batches/x", "metadata": {"state": "BATCH_STATE_FAILED"}, "done": True}
    operation["error"] = {"code": 13, "message": "Batch failed: bad input."}
    batch = Batch.model_validate(operation)
    assert batch.state is BatchState.FAILED
    assert batch.error is not None
    assert batch.error.message == "Batch failed: bad input."
    assert batch.summary()["error"] == "Batch failed: bad input."


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("BATCH_STATE_RUNNING", BatchState.RUNNING),
        ("JOB_STATE_SUCCEEDED", BatchState.SUCCEEDED),
        ("cancelled", BatchState.CANCELLED),
    ],
)
def test_state_spellings(wire: str, expected: BatchState) -> None:
    assert BatchState(wire) is expected


def test_unknown_state_is_tolerated_and_not_terminal() -> None:
    batch = Batch.model_validate({"name": "batches/x", "metadata": {"state": "BATCH_STATE_PAUSED"}})
    assert batch.state.value == "BATCH_STATE_PAUSED"
    assert not batch.state.is_terminal
    assert not batch.state.is_known


def test_file_resource_parses_int64_size() -> None:
    file = GeminiFile.model_validate(
        {"name": "files/abc", "sizeBytes": "70", "state": "ACTIVE", "newField": 1, "mimeType": "jsonl"}
    )
    assert file.size_bytes == 70
    assert file.model_extra == {"newField": 1}


def test_result_usage_and_embedding() -> None:
    result = BatchResult.from_dict(
        {
            "key": "r1",
            "response": {
                "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 16},
                "candidates": [{"content": {"parts": [{"text": "x", "thought": True}, {"text": "y"}]}}],
            },
        }
    )
    assert result.usage == {"promptTokenCount": 8, "totalTokenCount": 16}
    assert result.text == "y"
    embedding = BatchResult.from_dict({"key": "e", "response": {"tokenCount": "1", "embedding": {"values": [0.5, 1]}}})
    assert embedding.embedding == [0.5, 1.0]
    assert embedding.text is None


def test_a_result_survives_airflow_serde_and_its_repr_never_raises() -> None:
    try:
        from airflow.sdk.serde import serialize
    except ImportError:  # Airflow < 3.1
        from airflow.serialization.serde import serialize

    good = BatchResult.from_json(b'{"key": "a", "response": {"candidates": ["not an object"]}, "ticket": 7}')
    bad = BatchResult.from_json(b'{"key": "b", "error": {"code": 3, "message": "no"}}')
    for result in (good, bad):
        encoded = serialize(result)  # what an XCom push does; deserialising goes through the allow list
        assert encoded["__classname__"] == "airflow_provider_gemini_batch.models.BatchResult"
        assert BatchResult.deserialize(encoded["__data__"], encoded["__version__"]) == result
    assert repr(good) == "BatchResult(key='a', succeeded=True)"
    assert good.extra == {"ticket": 7}
