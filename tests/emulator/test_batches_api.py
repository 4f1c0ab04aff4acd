"""The Batches API: create, get, list, cancel, delete, and the results they carry."""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import MODEL, create, get_batch, inline_config, jsonl, prompt, upload, wait_for_state

GENERATE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
EMBED_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.EmbedContentBatch"


def test_create_replies_pending_with_int64_strings_and_no_done(api: httpx.Client, version: str) -> None:
    operation = create(api, version, inline_config("a", "b", "c"), displayName="inline-job")

    metadata = operation["metadata"]
    assert set(operation) == {"name", "metadata"}
    assert operation["name"].startswith("batches/")
    assert metadata == {
        "@type": GENERATE_TYPE,
        "model": f"models/{MODEL}",
        "displayName": "inline-job",
        "createTime": metadata["createTime"],
        "updateTime": metadata["createTime"],
        "batchStats": {"requestCount": "3", "pendingRequestCount": "3"},
        "state": "BATCH_STATE_PENDING",
        "name": operation["name"],
    }


def test_inline_job_succeeds_with_keyed_responses_in_metadata_and_response(api: httpx.Client, version: str) -> None:
    name = create(api, version, inline_config("hello world", "second prompt"))["name"]

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    assert operation["done"] is True
    assert "error" not in operation
    metadata = operation["metadata"]
    assert metadata["batchStats"] == {"requestCount": "2", "successfulRequestCount": "2"}
    assert metadata["endTime"] >= metadata["createTime"]
    items = metadata["output"]["inlinedResponses"]["inlinedResponses"]
    assert operation["response"] == {"@type": GENERATE_TYPE + "Output", **metadata["output"]}
    assert [item["metadata"] for item in items] == [{"key": "k0"}, {"key": "k1"}]
    first = items[0]["response"]
    assert first["candidates"] == [
        {"content": {"parts": [{"text": "Echo: hello world"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    ]
    assert first["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}
    assert first["modelVersion"] == MODEL
    assert first["responseId"]


def test_marked_prompts_fail_per_item_while_the_job_succeeds(api: httpx.Client, version: str) -> None:
    name = create(api, version, inline_config("fine", "please [[fail]] here"))["name"]

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    stats = operation["metadata"]["batchStats"]
    assert stats == {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"}
    failed = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"][1]
    assert failed["metadata"] == {"key": "k1"}
    assert failed["error"]["code"] == 3
    assert failed["error"]["status"] == "INVALID_ARGUMENT"
    assert "response" not in failed


def test_an_inline_request_without_contents_fails_alone(api: httpx.Client, version: str) -> None:
    items = [
        {"request": prompt("fine"), "metadata": {"key": "good"}},
        {"request": {"generationConfig": {"temperature": 0.2}}, "metadata": {"key": "no-contents"}},
        {"request": {"contents": []}, "metadata": {"key": "empty-contents"}},
        {"metadata": {"key": "no-request"}},
    ]
    name = create(api, version, {"requests": {"requests": items}})["name"]

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    stats = operation["metadata"]["batchStats"]
    assert stats == {"requestCount": "4", "successfulRequestCount": "1", "failedRequestCount": "3"}
    results = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    for failed, key in zip(results[1:], ["no-contents", "empty-contents", "no-request"], strict=True):
        assert set(failed) == {"error", "metadata"}
        assert failed["metadata"] == {"key": key}
        assert failed["error"] == {"code": 3, "message": failed["error"]["message"], "status": "INVALID_ARGUMENT"}
        assert "contents" in failed["error"]["message"]


def test_request_lines_without_contents_or_content_fail_alone(api: httpx.Client, version: str) -> None:
    generation_rows = [{"key": "good", "request": prompt("fine")}, {"key": "bare", "request": {"safetySettings": []}}]
    embedding_rows = [
        {"key": "good", "request": {"content": {"parts": [{"text": "a"}]}}},
        {"key": "bare", "request": {"taskType": "RETRIEVAL_DOCUMENT"}},
    ]
    names = [
        create(api, version, {"fileName": upload(api, version, jsonl(rows))["name"]}, embedding=embedding)["name"]
        for rows, embedding in ((generation_rows, False), (embedding_rows, True))
    ]

    for name, missing in zip(names, ["contents", "content"], strict=True):
        metadata = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")["metadata"]
        results_file = metadata["output"]["responsesFile"]
        lines = api.get(f"/{version}/{results_file}:download", params={"alt": "media"}).text.splitlines()
        by_key = {line["key"]: line for line in map(json.loads, lines)}
        assert metadata["batchStats"] == {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"}
        assert "response" in by_key["good"]
        assert set(by_key["bare"]) == {"key", "error"}
        assert (by_key["bare"]["error"]["code"], by_key["bare"]["error"]["status"]) == (3, "INVALID_ARGUMENT")
        assert missing in by_key["bare"]["error"]["message"]


def test_file_job_writes_a_results_file_echoing_keys_and_extra_fields(api: httpx.Client, version: str) -> None:
    rows = [
        {"key": "request-1", "request": prompt("first question"), "customer": 7},
        {"key": "request-2", "request": prompt("[[fail]] second")},
    ]
    input_file = upload(api, version, jsonl(rows) + b"\n" + b"not json\n")
    name = create(api, version, {"fileName": input_file["name"]})["name"]
    batch_id = name.removeprefix("batches/")

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    metadata = operation["metadata"]
    assert metadata["inputConfig"] == {"fileName": input_file["name"]}
    assert metadata["output"] == {"responsesFile": f"files/batch-{batch_id}"}
    assert operation["response"]["responsesFile"] == f"files/batch-{batch_id}"
    assert metadata["batchStats"] == {"requestCount": "3", "successfulRequestCount": "1", "failedRequestCount": "2"}
    results_file = api.get(f"/{version}/files/batch-{batch_id}").json()
    assert (results_file["source"], results_file["mimeType"]) == ("GENERATED", "application/jsonl")
    assert results_file["downloadUri"].endswith(f"/download/{version}/files/batch-{batch_id}:download?alt=media")
    lines = api.get(f"/{version}/files/batch-{batch_id}:download", params={"alt": "media"}).text.splitlines()
    results = [json.loads(line) for line in lines]
    assert results[0]["key"] == "request-1"
    assert results[0]["customer"] == 7
    assert results[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Echo: first question"
    assert (results[1]["key"], results[1]["error"]["status"]) == ("request-2", "INVALID_ARGUMENT")
    assert set(results[2]) == {"error"}


def test_create_accepts_snake_case_and_tuned_models(api: httpx.Client, version: str, control: EmulatorControl) -> None:
    control.configure(generation_models=[MODEL, "tunedModels/my-tuned"])
    input_file = upload(api, version, jsonl([{"key": "a", "request": prompt("x")}]))
    body = {"batch": {"display_name": "snake", "input_config": {"file_name": input_file["name"]}, "priority": "5"}}

    response = api.post(f"/{version}/tunedModels/my-tuned:batchGenerateContent", json=body)

    metadata = response.json()["metadata"]
    assert (metadata["displayName"], metadata["model"], metadata["priority"]) == ("snake", "tunedModels/my-tuned", "5")
    assert metadata["batchStats"] == {"requestCount": "1", "pendingRequestCount": "1"}


def test_inline_embeddings_mirror_the_service_shape(api: httpx.Client, version: str) -> None:
    items = [
        {"request": {"content": {"parts": [{"text": "embed me please"}]}, "outputDimensionality": 8}},
        {"request": {"content": {"parts": [{"text": "default size"}]}, "taskType": "RETRIEVAL_DOCUMENT"}},
    ]
    name = create(api, version, {"requests": {"requests": items}}, embedding=True)["name"]

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    assert operation["metadata"]["@type"] == EMBED_TYPE
    assert operation["response"]["@type"] == EMBED_TYPE + "Output"
    first, second = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert first["response"]["tokenCount"] == "3"
    assert len(first["response"]["embedding"]["values"]) == 8
    assert len(second["response"]["embedding"]["values"]) == 768


def test_file_embeddings_write_keyed_lines(api: httpx.Client, version: str) -> None:
    row = {"key": "r1", "request": {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}}
    input_file = upload(api, version, jsonl([row]))
    name = create(api, version, {"file_name": input_file["name"]}, embedding=True)["name"]

    results_file = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")["metadata"]["output"]["responsesFile"]

    line = json.loads(api.get(f"/{version}/{results_file}:download?alt=media").content)
    assert line["key"] == "r1"
    assert line["response"]["tokenCount"] == "1"
    assert len(line["response"]["embedding"]["values"]) == 4


def test_list_pages_newest_first_without_inline_results(api: httpx.Client, version: str) -> None:
    assert api.get(f"/{version}/batches").json() == {}
    names = [create(api, version, inline_config(f"job {index}"))["name"] for index in range(3)]
    wait_for_state(api, version, names[0], "BATCH_STATE_SUCCEEDED")

    first_page = api.get(f"/{version}/batches", params={"pageSize": 2}).json()
    second_page = api.get(f"/{version}/batches", params={"pageToken": first_page["nextPageToken"]}).json()

    operations = first_page["operations"] + second_page["operations"]
    assert [operation["name"] for operation in operations] == names[::-1]
    assert "nextPageToken" not in second_page
    assert all(operation["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" for operation in operations)
    assert not any("output" in operation["metadata"] or "response" in operation for operation in operations)


def test_cancel_and_delete(api: httpx.Client, version: str, control: EmulatorControl) -> None:
    control.configure(running_seconds=30)
    name = create(api, version, inline_config("slow"))["name"]

    cancelled = api.post(f"/{version}/{name}:cancel")
    operation = get_batch(api, version, name)
    deleted = api.delete(f"/{version}/{name}")

    assert (cancelled.status_code, cancelled.json()) == (200, {})
    assert operation["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert operation["done"] is True
    assert operation["error"] == {"code": 13, "message": "Batch was cancelled."}
    assert "output" not in operation["metadata"]
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert api.get(f"/{version}/{name}").status_code == 404


def test_cancel_of_a_finished_job_changes_nothing(api: httpx.Client, version: str) -> None:
    name = create(api, version, inline_config("quick"))["name"]
    wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    assert api.post(f"/{version}/{name}:cancel").status_code == 200
    assert get_batch(api, version, name)["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_batch_is_not_found(api: httpx.Client, version: str, method: str) -> None:
    response = api.request(method, f"/{version}/batches/nosuchbatch")

    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("batch", "status"),
    [
        ({"inputConfig": {"fileName": "files/missing"}}, 403),
        ({"inputConfig": {}}, 400),
        ({"inputConfig": {"requests": {"requests": []}}}, 400),
        ({"inputConfig": {"requests": {"requests": [{"request": "hi", "metadata": {"key": "x"}}]}}}, 400),
        ({"inputConfig": {"requests": {"requests": ["hi"]}}}, 400),
        ({"inputConfig": {"requests": {"requests": [{"request": prompt("x")}]}}, "priority": "high"}, 400),
        (None, 400),
    ],
)
def test_invalid_creates_are_refused_without_creating_a_job(
    api: httpx.Client, control: EmulatorControl, batch: object, status: int
) -> None:
    response = api.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json={"batch": batch})

    assert response.status_code == status
    assert control.created_count() == 0


def test_oversized_inline_request_is_refused_with_the_service_message(api: httpx.Client) -> None:
    item = {"request": prompt("x" * (21 * 1024 * 1024))}

    response = api.post(
        f"/v1/models/{MODEL}:batchGenerateContent", json={"batch": {"inputConfig": {"requests": {"requests": [item]}}}}
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Request payload size exceeds the limit: 20971520 bytes."


def test_file_job_keeps_its_input_when_the_file_is_deleted(
    api: httpx.Client, version: str, control: EmulatorControl
) -> None:
    control.configure(pending_seconds=0.2)
    input_file = upload(api, version, jsonl([{"key": "a", "request": prompt("kept")}]))
    name = create(api, version, {"fileName": input_file["name"]})["name"]
    api.delete(f"/{version}/{input_file['name']}")

    operation = wait_for_state(api, version, name, "BATCH_STATE_SUCCEEDED")

    assert operation["metadata"]["batchStats"]["successfulRequestCount"] == "1"
