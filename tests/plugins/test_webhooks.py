"""POST /gemini-batch/webhooks/{conn_id}: a verified completion becomes one asset event; anything else, none."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.testclient import TestClient

from airflow_provider_gemini_batch.assets import CompletedBatch, handled_key
from airflow_provider_gemini_batch.settings import WEBHOOK_MAX_BODY_BYTES

from .conftest import CONN_ID, DAG_ID, Deliver, completion_event, new_secret, signed_headers

URL = f"/gemini-batch/webhooks/{CONN_ID}"


def recorded_extras(asset_id: int) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [
            dict(extra) for extra in session.scalars(select(AssetEvent.extra).where(AssetEvent.asset_id == asset_id))
        ]


def queued_dags(asset_id: int) -> list[str]:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id))
        )


def test_a_signed_completion_records_one_event_and_queues_the_scheduled_dag(deliver: Deliver, asset_id: int) -> None:
    started = time.monotonic()
    response = deliver(completion_event("batches/abc123"), webhook_id="msg_1")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 1.0  # The service expects a quick 2xx; the DAG run is queued, not run, here.
    assert response.json()["status"] == "recorded"
    (extra,) = recorded_extras(asset_id)
    assert (
        extra
        == CompletedBatch(
            batch="batches/abc123",
            state="BATCH_STATE_SUCCEEDED",
            results_file="files/results-abc123",
            user_metadata={"run": "nightly"},
            source="webhook",
            webhook_id="msg_1",
        ).as_extra()
    )
    assert queued_dags(asset_id) == [DAG_ID]


def test_a_failed_job_carries_its_error_and_no_results_file(deliver: Deliver, asset_id: int) -> None:
    body = completion_event(
        "batches/broken", "batch.failed", output_file_uri=None, error_code=3, error_message="bad input file"
    )

    assert deliver(body).status_code == 200

    (extra,) = recorded_extras(asset_id)
    completed = CompletedBatch.from_extra(extra)
    assert completed is not None
    assert completed.state == "BATCH_STATE_FAILED"
    assert completed.error == "bad input file"
    assert completed.results_file is None


def test_a_results_file_given_as_file_name_is_read_too(deliver: Deliver, asset_id: int) -> None:
    body = completion_event("batches/named", output_file_uri=None, file_name="files/by-name")

    assert deliver(body).status_code == 200

    (extra,) = recorded_extras(asset_id)
    assert extra["results_file"] == "files/by-name"


def test_a_redelivery_with_the_same_webhook_id_records_nothing_more(deliver: Deliver, asset_id: int) -> None:
    first = deliver(webhook_id="msg_same")
    again = deliver(webhook_id="msg_same")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "duplicate"
    assert len(recorded_extras(asset_id)) == 1


def test_a_second_announcement_of_the_same_job_records_nothing_more(deliver: Deliver, asset_id: int) -> None:
    """A project webhook and the job's own webhookConfig both announce it, under different ids."""
    deliver(completion_event("batches/twice"), webhook_id="msg_project")
    second = deliver(completion_event("batches/twice"), webhook_id="msg_per_job")

    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert [extra["webhook_id"] for extra in recorded_extras(asset_id)] == ["msg_project"]


def test_different_jobs_each_record_an_event(deliver: Deliver, asset_id: int) -> None:
    deliver(completion_event("batches/one"))
    deliver(completion_event("batches/two"))

    assert sorted(extra["batch"] for extra in recorded_extras(asset_id)) == ["batches/one", "batches/two"]


def test_a_job_the_safety_net_already_announced_is_not_announced_again(deliver: Deliver, asset_id: int) -> None:
    """The safety net marks a job it announced under ``handled_key`` in the asset's state store (3.3+)."""
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:
        pytest.skip("Airflow < 3.3 has no asset state store; there the receiver reads the asset's events")
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(AssetStateStoreModel(asset_id=asset_id, key=handled_key("batches/polled"), value='"poll"'))

    response = deliver(completion_event("batches/polled"))

    assert response.json()["status"] == "duplicate"
    assert recorded_extras(asset_id) == []


def test_a_concurrent_recording_of_the_same_job_that_lands_first_makes_this_one_a_duplicate(
    deliver: Deliver, asset_id: int
) -> None:
    """Two api-server workers both pass the "already recorded?" read; the table's key decides.

    Between this delivery's read and its write, another connection (the other worker) commits the
    job's mark. The write then collides on the primary key: the answer is "duplicate", and no event.
    """
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:
        pytest.skip("Airflow < 3.3 has no asset state store; there the check is best effort (docs/webhooks.md)")
    from airflow import settings
    from sqlalchemy import event, insert
    from sqlalchemy.orm import Session

    raced: list[str] = []

    def the_other_worker_commits_first(session: Session, *_: Any) -> None:
        pending = [row for row in session.new if isinstance(row, AssetStateStoreModel)]
        if raced or not pending:
            return
        raced.append(pending[0].key)
        with settings.engine.begin() as other_worker:
            other_worker.execute(
                insert(AssetStateStoreModel).values(
                    asset_id=asset_id, key=handled_key("batches/raced"), value='"webhook"', last_updated_by_kind="api"
                )
            )

    event.listen(Session, "before_flush", the_other_worker_commits_first)
    try:
        response = deliver(completion_event("batches/raced"), webhook_id="msg_second_worker")
    finally:
        event.remove(Session, "before_flush", the_other_worker_commits_first)

    assert raced, "the race was staged: the other worker wrote between the read and the write"
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert recorded_extras(asset_id) == []
    assert queued_dags(asset_id) == []


def test_recording_prunes_old_marks_and_keeps_recent_ones(deliver: Deliver, asset_id: int) -> None:
    """One row per job would otherwise pile up in the state store forever."""
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:
        pytest.skip("Airflow < 3.3 has no asset state store")
    from airflow.utils.session import create_session
    from sqlalchemy import select

    now = datetime.now(timezone.utc)
    marks = {
        "webhook:msg_old": now - timedelta(days=3),
        "webhook:msg_recent": now - timedelta(hours=1),
        handled_key("batches/old"): now - timedelta(days=40),
        handled_key("batches/recent"): now - timedelta(days=1),
    }
    with create_session() as session:
        for key, when in marks.items():
            session.add(AssetStateStoreModel(asset_id=asset_id, key=key, value='"x"', updated_at=when))

    assert deliver(completion_event("batches/new"), webhook_id="msg_new").json()["status"] == "recorded"

    with create_session() as session:
        keys = set(session.scalars(select(AssetStateStoreModel.key).where(AssetStateStoreModel.asset_id == asset_id)))
    assert "webhook:msg_old" not in keys
    assert handled_key("batches/old") not in keys
    assert {"webhook:msg_recent", handled_key("batches/recent"), "webhook:msg_new", handled_key("batches/new")} <= keys


def test_a_job_announced_by_a_trigger_event_is_not_announced_again(deliver: Deliver, asset_id: int) -> None:
    """An event the safety net emitted (wrapped by Airflow as ``from_trigger``) counts as an announcement."""
    from airflow.assets.manager import AssetManager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    payload = CompletedBatch(batch="batches/polled", state="BATCH_STATE_SUCCEEDED", source="poll").as_extra()
    with create_session() as session:
        model = session.scalar(select(AssetModel).where(AssetModel.id == asset_id))
        AssetManager.register_asset_change(
            asset=model, extra={"from_trigger": True, "payload": payload}, session=session
        )
        try:
            from airflow.models.asset_state_store import AssetStateStoreModel
        except ImportError:
            pass
        else:  # On 3.3 the safety net also marks the job handled; the event alone is what 3.0 has.
            session.add(AssetStateStoreModel(asset_id=asset_id, key=handled_key("batches/polled"), value='"poll"'))

    response = deliver(completion_event("batches/polled"))

    assert response.json()["status"] == "duplicate"
    assert len(recorded_extras(asset_id)) == 1


@pytest.mark.parametrize("event_type", ["batch.succeeded", "batch.failed", "batch.cancelled", "batch.expired"])
def test_every_final_state_is_recorded(deliver: Deliver, asset_id: int, event_type: str) -> None:
    assert deliver(completion_event(f"batches/{event_type}", event_type)).status_code == 200

    (extra,) = recorded_extras(asset_id)
    assert extra["state"] == "BATCH_STATE_" + event_type.removeprefix("batch.").upper()


def test_a_ping_is_acknowledged_and_records_nothing(deliver: Deliver, asset_id: int) -> None:
    response = deliver(b'{"type": "webhook.ping", "version": "v1", "data": {}}')

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert "not a batch completion" in response.json()["detail"]
    assert recorded_extras(asset_id) == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"type": "batch.succeeded"}', b'{"type": "batch.succeeded", "data": {"id": 7}}'],
    ids=["not-json", "not-an-object", "no-data", "id-not-a-string"],
)
def test_a_verified_but_unreadable_event_is_acknowledged_and_records_nothing(
    deliver: Deliver, asset_id: int, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A resend cannot make a signed body readable, and a day of non-2xx answers disables the webhook."""
    with caplog.at_level(logging.ERROR, logger="airflow_provider_gemini_batch.plugins.webhooks"):
        response = deliver(body)

    assert response.status_code == 200
    assert response.json()["status"] == "unreadable"
    assert recorded_extras(asset_id) == []
    assert any(record.levelno == logging.ERROR for record in caplog.records), "an unreadable event is an error to see"


@pytest.mark.parametrize("field", ["webhook_id", "batch"])
def test_an_overlong_webhook_id_or_job_name_is_acknowledged_unread(deliver: Deliver, asset_id: int, field: str) -> None:
    long = "x" * 300
    response = (
        deliver(completion_event(f"batches/{long}"), webhook_id="msg") if field == "batch" else deliver(webhook_id=long)
    )

    assert response.status_code == 200
    assert response.json()["status"] == "unreadable"
    assert recorded_extras(asset_id) == []


def test_no_dag_scheduled_on_the_asset_is_acknowledged_and_records_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, asset_id: int
) -> None:
    """A non-2xx would have the service retry for a day and then disable the webhook."""
    secret = new_secret()
    monkeypatch.setenv(
        "AIRFLOW_CONN_GEMINI_UNSCHEDULED", f'{{"conn_type": "gemini", "extra": {{"webhook_secret": "{secret}"}}}}'
    )
    body = completion_event()

    response = client.post(
        "/gemini-batch/webhooks/gemini_unscheduled", content=body, headers=signed_headers(body, secret)
    )

    assert response.status_code == 200
    assert response.json()["status"] == "no_asset"
    assert recorded_extras(asset_id) == []


class TestRefused:
    """Each refusal is a 401 (or 413) before anything is parsed or recorded."""

    def test_a_tampered_body(self, client: TestClient, signing_secret: str, asset_id: int) -> None:
        headers = signed_headers(completion_event("batches/real"), signing_secret)

        response = client.post(URL, content=completion_event("batches/forged"), headers=headers)

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    def test_a_wrong_secret(self, deliver: Deliver, asset_id: int) -> None:
        response = deliver(secret=new_secret())

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    @pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_a_missing_header(self, client: TestClient, signing_secret: str, asset_id: int, header: str) -> None:
        body = completion_event()
        headers = signed_headers(body, signing_secret)
        del headers[header]

        response = client.post(URL, content=body, headers=headers)

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    @pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)], ids=["old", "future"])
    def test_a_timestamp_outside_the_tolerance(self, deliver: Deliver, asset_id: int, offset: timedelta) -> None:
        response = deliver(timestamp=datetime.now(timezone.utc) + offset)

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    @pytest.mark.parametrize(
        "signature",
        ["v1", "v1,%%%notbase64", "v2,abc", "", "v1,," + "A" * 5],
        ids=["no-comma", "bad-base64", "v2", "empty", "junk"],
    )
    def test_a_malformed_signature(
        self, client: TestClient, signing_secret: str, asset_id: int, signature: str
    ) -> None:
        body = completion_event()
        headers = {**signed_headers(body, signing_secret), "webhook-signature": signature}

        response = client.post(URL, content=body, headers=headers)

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    def test_a_body_that_is_not_utf8(self, client: TestClient, signing_secret: str, asset_id: int) -> None:
        headers = signed_headers(b"{}", signing_secret)

        response = client.post(URL, content=b"\xff\xfe{}", headers=headers)

        assert response.status_code == 401

    def test_an_unknown_connection_answers_like_a_bad_signature(self, deliver: Deliver, asset_id: int) -> None:
        unknown = deliver(conn_id="no_such_connection")
        wrong = deliver(secret=new_secret())

        assert unknown.status_code == wrong.status_code == 401
        assert unknown.json() == wrong.json()
        assert recorded_extras(asset_id) == []

    def test_a_connection_without_a_secret(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch, signing_secret: str, asset_id: int
    ) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", '{"conn_type": "gemini", "password": "AIza-key"}')
        body = completion_event()

        response = client.post(URL, content=body, headers=signed_headers(body, signing_secret))

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []

    def test_an_oversize_body_declared_up_front(self, deliver: Deliver, asset_id: int) -> None:
        body = completion_event(padding="x" * WEBHOOK_MAX_BODY_BYTES)

        response = deliver(body)

        assert response.status_code == 413
        assert recorded_extras(asset_id) == []

    def test_an_oversize_body_streamed_without_a_length(
        self, client: TestClient, signing_secret: str, asset_id: int
    ) -> None:
        chunks = [b"x" * 1024] * (WEBHOOK_MAX_BODY_BYTES // 1024 + 2)
        headers = signed_headers(b"irrelevant", signing_secret)

        response = client.post(URL, content=iter(chunks), headers=headers)

        assert response.status_code == 413
        assert recorded_extras(asset_id) == []


def test_during_a_rotation_both_secrets_are_accepted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, asset_id: int
) -> None:
    old, new = new_secret(), new_secret()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", f'{{"conn_type": "gemini", "extra": {{"webhook_secret": "{old} {new}"}}}}'
    )

    for secret, batch in [(old, "batches/old"), (new, "batches/new")]:
        body = completion_event(batch)
        assert client.post(URL, content=body, headers=signed_headers(body, secret)).status_code == 200

    assert len(recorded_extras(asset_id)) == 2


def test_neither_the_secret_nor_the_api_key_nor_an_unverified_body_reaches_a_response_or_a_log(
    client: TestClient, signing_secret: str, asset_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    forged = completion_event("batches/forged-marker")
    responses = [
        client.post(URL, content=forged, headers=signed_headers(forged, new_secret())),
        client.post(URL, content=forged, headers=signed_headers(completion_event(), signing_secret)),
        client.post(URL, content=completion_event(), headers=signed_headers(completion_event(), signing_secret)),
        client.post(
            "/gemini-batch/webhooks/no_such_connection", content=forged, headers=signed_headers(forged, signing_secret)
        ),
    ]
    body = completion_event("batches/logged")
    responses.append(client.post(URL, content=body, headers=signed_headers(body, signing_secret)))

    assert responses[-1].status_code == 200
    seen = caplog.text + "".join(response.text for response in responses)
    assert "webhook" in caplog.text  # The refusals were logged, with their reasons.
    for secret_part in (signing_secret, signing_secret.removeprefix("whsec_"), "AIza-test-api-key", "forged-marker"):
        assert secret_part not in seen


class TestNothingElseIsServed:
    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_other_methods_on_the_webhook_path(self, client: TestClient, method: str) -> None:
        assert client.request(method, URL).status_code == 405

    @pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/webhooks", "/", "/webhooks/a/b"])
    def test_other_paths(self, client: TestClient, path: str) -> None:
        assert client.get(f"/gemini-batch{path}").status_code == 404


class TestRefusedBeforeTheConnectionIsLookedUp:
    """An unsigned caller must not make the api-server query its secrets backends."""

    @pytest.mark.parametrize(
        ("timestamp", "signature"),
        [("1", "v1,AAAA"), (str(int(time.time())), "no-version"), ("not-a-number", "v1,AAAA")],
        ids=["stale-timestamp", "no-v1-signature", "bad-timestamp"],
    )
    def test_a_request_that_cannot_verify_never_reaches_the_lookup(
        self, client: TestClient, caplog: pytest.LogCaptureFixture, timestamp: str, signature: str
    ) -> None:
        headers = {"webhook-id": "msg_x", "webhook-timestamp": timestamp, "webhook-signature": signature}
        with caplog.at_level(logging.INFO):
            response = client.post("/gemini-batch/webhooks/no_such_connection", content=b"{}", headers=headers)

        assert response.status_code == 401
        assert response.json()["detail"] == "webhook signature verification failed"
        assert not any("no such connection" in record.getMessage() for record in caplog.records)

    @pytest.mark.parametrize("conn_id", ["a b", "x" * 300, "..%2F"], ids=["space", "too-long", "odd"])
    def test_a_conn_id_that_cannot_be_a_connection_id_is_refused_alike(
        self, deliver: Deliver, asset_id: int, conn_id: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO):
            response = deliver(conn_id=conn_id)

        assert response.status_code in (401, 404)
        assert not any("no such connection" in record.getMessage() for record in caplog.records)
        assert recorded_extras(asset_id) == []

    def test_a_connection_of_another_type_is_refused_like_a_bad_signature(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch, asset_id: int
    ) -> None:
        secret = new_secret()
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", f'{{"conn_type": "http", "extra": {{"webhook_secret": "{secret}"}}}}'
        )
        body = completion_event()

        response = client.post(URL, content=body, headers=signed_headers(body, secret))

        assert response.status_code == 401
        assert recorded_extras(asset_id) == []
