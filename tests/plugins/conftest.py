"""The receiver against the session's real metadata DB: a DAG scheduled on the completion asset, synced as the
DAG processor would, and a connection holding the signing secret."""

from __future__ import annotations

import base64
import json
import secrets
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

CONN_ID = "gemini_webhooks_test"
DAG_ID = "results_on_completion_test"

Deliver = Callable[..., Any]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sync_dags_folder(folder: Path) -> None:
    """Parse ``folder`` and write its DAGs (and the assets they are scheduled on) to the DB, then unpause them."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

        bag = DagBag(dag_folder=str(folder))
        assert bag.import_errors == {}
        sync_bag_to_db(bag, "dags-folder", None)
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag as DagBag30

        bag = DagBag30(dag_folder=str(folder), include_examples=False)
        assert bag.import_errors == {}
        bag.sync_to_db("dags-folder", None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(bag.dag_ids)).values(is_paused=False))


@pytest.fixture(scope="session")
def completion_asset_in_db(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Migrate the DB and sync a DAG scheduled on ``gemini_batch_completed(CONN_ID)``; return the asset's id."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.asset import AssetModel
    from airflow.utils import db
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_gemini_batch.assets import gemini_batch_completed

    db.initdb()
    DagBundlesManager().sync_bundles_to_db()
    folder = tmp_path_factory.mktemp("webhook-dags")
    (folder / f"{DAG_ID}.py").write_text(
        textwrap.dedent(
            f"""
            from airflow.providers.standard.operators.empty import EmptyOperator
            from airflow.sdk import DAG

            from airflow_provider_gemini_batch.assets import gemini_batch_completed

            with DAG({DAG_ID!r}, schedule=[gemini_batch_completed({CONN_ID!r})]):
                EmptyOperator(task_id="download")
            """
        )
    )
    sync_dags_folder(folder)
    asset = gemini_batch_completed(CONN_ID)
    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.name == asset.name))
    assert asset_id is not None
    return int(asset_id)


def clear_asset_records(asset_id: int) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset_id))
        session.execute(delete(AssetEvent).where(AssetEvent.asset_id == asset_id))
        try:
            from airflow.models.asset_state_store import AssetStateStoreModel
        except ImportError:  # Airflow < 3.3: no asset state store
            return
        session.execute(delete(AssetStateStoreModel).where(AssetStateStoreModel.asset_id == asset_id))


@pytest.fixture
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``gemini`` connection ``CONN_ID`` whose extra holds a fresh signing secret; return the secret."""
    secret = new_secret()
    conn = {"conn_type": "gemini", "password": "AIza-test-api-key", "extra": {"webhook_secret": secret}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return secret


@pytest.fixture
def asset_id(completion_asset_in_db: int) -> Iterator[int]:
    """The completion asset's id, with no event, queued run or stored key left from another test."""
    clear_asset_records(completion_asset_in_db)
    yield completion_asset_in_db
    clear_asset_records(completion_asset_in_db)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A client of the plugin's app mounted where the api-server mounts it (``/gemini-batch``)."""
    from fastapi import FastAPI

    from airflow_provider_gemini_batch.plugins import GeminiBatchPlugin

    (entry,) = GeminiBatchPlugin.fastapi_apps
    root = FastAPI()
    root.mount(entry["url_prefix"], entry["app"])
    with TestClient(root, raise_server_exceptions=True) as test_client:
        yield test_client


def completion_event(batch: str = "batches/abc123", event_type: str = "batch.succeeded", **data: Any) -> bytes:
    """A delivery body in the shape docs/webhooks.md describes."""
    payload = {
        "type": event_type,
        "version": "v1",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "data": {"id": batch, "output_file_uri": "files/results-abc123", "user_metadata": {"run": "nightly"}, **data},
    }
    return json.dumps(payload).encode()


def signed_headers(
    body: bytes, secret: str, *, webhook_id: str | None = None, timestamp: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed with ``secret``."""
    from standardwebhooks import Webhook

    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = timestamp or datetime.now(timezone.utc)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, timestamp, body.decode()),
        "content-type": "application/json",
    }


@pytest.fixture
def deliver(client: TestClient, signing_secret: str) -> Deliver:
    """Return ``deliver(body=..., secret=..., conn_id=..., **header_options)``: POST a signed delivery."""

    def post(body: bytes | None = None, *, secret: str | None = None, conn_id: str = CONN_ID, **options: Any) -> Any:
        body = completion_event() if body is None else body
        headers = signed_headers(body, secret or signing_secret, **options)
        return client.post(f"/gemini-batch/webhooks/{conn_id}", content=body, headers=headers)

    return post
