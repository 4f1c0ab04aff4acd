"""Record a verified batch completion as one event on the connection's completion asset, once.

The api-server owns the metadata DB, so the receiver writes there itself, as Airflow's public
``POST /api/v2/assets/events`` route does: ``AssetManager.register_asset_change`` adds the event and
queues the runs of the DAGs scheduled on the asset, in one short transaction.

A job is announced once, whichever path announces it and however often:

- **Airflow 3.3+** (asset state store): the same transaction inserts two keys into the asset's state
  store, ``webhook:{webhook-id}`` and ``handled_key(batch)`` (which the safety net checks and sets
  too). The table's primary key makes this atomic across api-server workers: a key already there,
  or an insert that collides with a concurrent one, means "already recorded".
- **Airflow 3.0-3.2** (no asset state store): the receiver reads the asset's recent events and skips
  a job one of them already announces (by ``webhook_id`` or batch name, the safety net's events
  included), under a lock held by this process only. This is **best effort** with several
  api-server workers or hosts: two deliveries of the same job reaching two workers at the same
  instant can both record it. A second downstream run is then harmless: the download operator skips
  a destination that already holds the job's complete results.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_gemini_batch.assets import CompletedBatch, gemini_batch_completed, handled_key

log = logging.getLogger(__name__)

#: How long a delivery's ``webhook:`` key is kept: the service retries a delivery for up to 24 h.
#: Older keys are dropped; the job's ``handled:`` key still stops a late redelivery.
WEBHOOK_KEY_RETENTION = timedelta(hours=48)
#: How long a job's ``handled:`` key is kept. Past it the safety net's watermark (which trails the
#: newest end time it saw by minutes) has long passed the job, so no path announces it again.
HANDLED_KEY_RETENTION = timedelta(days=30)
#: How many of the asset's newest events the pre-3.3 check reads.
RECENT_EVENTS_CHECKED = 500

_WEBHOOK_KEY_PREFIX = "webhook:"
_fallback_lock = threading.Lock()


class Outcome(str, enum.Enum):
    """What became of a verified completion."""

    RECORDED = "recorded"
    """One asset event was recorded (and runs of the DAGs scheduled on the asset queued)."""
    DUPLICATE = "duplicate"
    """The delivery, or another announcement of the same job, was already recorded."""
    NO_ASSET = "no_asset"
    """No active DAG is scheduled on the connection's asset: there is nothing to record on."""


def webhook_key(webhook_id: str) -> str:
    """The asset state store key that marks a delivery (``webhook-id``) as recorded."""
    return f"{_WEBHOOK_KEY_PREFIX}{webhook_id}"


def record_completion(conn_id: str, completed: CompletedBatch) -> Outcome:
    """Record ``completed`` on ``gemini_batch_completed(conn_id)`` unless it was already announced."""
    if _asset_state_store_model() is not None:
        return _record_with_state_store(conn_id, completed)
    with _fallback_lock:
        return _record_checking_recent_events(conn_id, completed)


def _asset_state_store_model() -> Any:
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:  # Airflow < 3.3
        return None
    return AssetStateStoreModel


def _active_asset(conn_id: str, session: Any) -> Any:
    from airflow.models.asset import AssetModel
    from sqlalchemy import select

    asset = gemini_batch_completed(conn_id)
    return session.scalar(
        select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri, AssetModel.active.has())
    )


def _register(asset_model: Any, completed: CompletedBatch, session: Any) -> None:
    from airflow.assets.manager import AssetManager

    AssetManager.register_asset_change(asset=asset_model, extra=completed.as_extra(), session=session)


def _record_with_state_store(conn_id: str, completed: CompletedBatch) -> Outcome:
    from airflow.utils.session import create_session
    from sqlalchemy import and_, delete, or_, select
    from sqlalchemy.exc import IntegrityError

    store = _asset_state_store_model()
    keys = [handled_key(completed.batch)]
    if completed.webhook_id:
        keys.append(webhook_key(completed.webhook_id))
    now = datetime.now(timezone.utc)
    with create_session() as session:
        asset_model = _active_asset(conn_id, session)
        if asset_model is None:
            return Outcome.NO_ASSET
        already = session.scalar(
            select(store.key).where(store.asset_id == asset_model.id, store.key.in_(keys)).limit(1)
        )
        if already is not None:
            return Outcome.DUPLICATE
        value = json.dumps({"source": completed.source, "webhook_id": completed.webhook_id})
        # Written as Airflow's core API writes (kind "api"): the receiver runs inside the api-server.
        session.add_all(
            store(asset_id=asset_model.id, key=key, value=value, updated_at=now, last_updated_by_kind="api")
            for key in keys
        )
        try:
            session.flush()
        except IntegrityError:  # Another worker recorded the same delivery or job a moment ago.
            session.rollback()
            return Outcome.DUPLICATE
        session.execute(  # Old marks, so that the table does not grow by a row per job forever.
            delete(store).where(
                store.asset_id == asset_model.id,
                or_(
                    and_(
                        store.key.startswith(_WEBHOOK_KEY_PREFIX, autoescape=True),
                        store.updated_at < now - WEBHOOK_KEY_RETENTION,
                    ),
                    and_(
                        store.key.startswith(handled_key(""), autoescape=True),
                        store.updated_at < now - HANDLED_KEY_RETENTION,
                    ),
                ),
            )
        )
        _register(asset_model, completed, session)
    return Outcome.RECORDED


def _record_checking_recent_events(conn_id: str, completed: CompletedBatch) -> Outcome:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset_model = _active_asset(conn_id, session)
        if asset_model is None:
            return Outcome.NO_ASSET
        recent = session.scalars(
            select(AssetEvent.extra)
            .where(AssetEvent.asset_id == asset_model.id)
            .order_by(AssetEvent.id.desc())
            .limit(RECENT_EVENTS_CHECKED)
        )
        for extra in recent:
            announced = CompletedBatch.from_extra(extra)
            if announced is not None and (
                announced.batch == completed.batch
                or (completed.webhook_id is not None and announced.webhook_id == completed.webhook_id)
            ):
                return Outcome.DUPLICATE
        _register(asset_model, completed, session)
    return Outcome.RECORDED
