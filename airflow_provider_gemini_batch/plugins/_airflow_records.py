"""What Airflow's metadata DB knows about jobs: the task that created each, and the tokens of downloaded results.

- **Creator**: a durable submit names its job ``<display name> (airflow:<key>)``, the key a hash of
  dag_id, task_id, run_id and map_index (``idempotency.py``). The key cannot be reversed, so the
  task instances of the provider's submit operators in DAG runs that had not ended when the oldest
  listed job was created are hashed, and their keys matched. A subclass under another class name is
  not recognised, nor is a job submitted with ``durable=False`` (it carries no key).
- **Tokens and cost**: ``GeminiDownloadResultsOperator`` returns a manifest with the job's name, its
  summed token ``usage`` and its ``cost`` estimate (``pricing.py``); the manifests of download tasks
  since the oldest listed job are read.

Both are reads of a few indexed rows per job, in one short session each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_gemini_batch.idempotency import idempotency_key
from airflow_provider_gemini_batch.plugins._job_view import Creator

__all__ = ["Downloaded", "creators_by_key", "downloads_by_batch", "gemini_connection_ids"]

log = logging.getLogger(__name__)

# The operators' class names, as Airflow records them in task_instance.operator.
SUBMIT_OPERATORS = ("GeminiSubmitBatchOperator", "GeminiSubmitEmbeddingsBatchOperator")
DOWNLOAD_OPERATORS = ("GeminiDownloadResultsOperator",)


def creators_by_key(keys: Collection[str], since: datetime | None) -> dict[str, Creator]:
    """The task instance behind each durable key, among submit tasks of DAG runs still going at ``since``."""
    if not keys:
        return {}
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import and_, or_, select

    query = (
        select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index)
        .join(DagRun, and_(DagRun.dag_id == TaskInstance.dag_id, DagRun.run_id == TaskInstance.run_id))
        .where(TaskInstance.operator.in_(SUBMIT_OPERATORS))
    )
    if since is not None:
        query = query.where(or_(DagRun.end_date.is_(None), DagRun.end_date >= since))
    wanted = set(keys)
    found: dict[str, Creator] = {}
    with create_session() as session:
        for dag_id, run_id, task_id, map_index in session.execute(query):
            key = idempotency_key(dag_id, task_id, run_id, map_index)
            if key in wanted:
                found[key] = Creator(dag_id, run_id, task_id, map_index)
    return found


@dataclass(frozen=True)
class Downloaded:
    """What a download task's manifest says of a job: summed token counters, and the cost estimate if priced."""

    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, Any] | None = None


def downloads_by_batch(batch_names: Collection[str], since: datetime | None) -> dict[str, Downloaded]:
    """Token counters and cost per job, from the manifests download tasks returned since ``since``."""
    if not batch_names:
        return {}
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import and_, select

    query = (
        select(XComModel.value)
        .join(
            TaskInstance,
            and_(
                TaskInstance.dag_id == XComModel.dag_id,
                TaskInstance.run_id == XComModel.run_id,
                TaskInstance.task_id == XComModel.task_id,
                TaskInstance.map_index == XComModel.map_index,
            ),
        )
        .where(XComModel.key == "return_value", TaskInstance.operator.in_(DOWNLOAD_OPERATORS))
    )
    if since is not None:
        query = query.where(XComModel.timestamp >= since)
    wanted = set(batch_names)
    found: dict[str, Downloaded] = {}
    with create_session() as session:
        for (value,) in session.execute(query):
            manifest = _decoded(value)
            if not isinstance(manifest, Mapping) or manifest.get("batch_name") not in wanted:
                continue
            usage = manifest.get("usage")
            if isinstance(usage, Mapping):
                counters = {
                    name: count
                    for name, count in usage.items()
                    if isinstance(count, int) and not isinstance(count, bool)
                }
                found[manifest["batch_name"]] = Downloaded(counters, _cost(manifest.get("cost")))
    return found


def _cost(cost: Any) -> dict[str, Any] | None:
    """A manifest's ``cost`` when it has the shape ``pricing.estimate_cost`` gives, else ``None``."""
    if not isinstance(cost, Mapping):
        return None
    amounts = [cost.get(name) for name in ("batch", "interactive", "saved")]
    if not all(isinstance(amount, (int, float)) and not isinstance(amount, bool) for amount in amounts):
        return None
    return {name: cost[name] for name in ("batch", "interactive", "saved")} | {
        "prices_as_of": str(cost.get("prices_as_of") or ""),
        "currency": str(cost.get("currency") or "USD"),
    }


def gemini_connection_ids() -> list[str]:
    """The ids of the ``gemini`` connections stored in the metadata DB (environment ones cannot be listed)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "gemini")))


def _decoded(value: Any) -> Any:
    """An XCom value as stored: JSON text (Airflow serializes it before the JSON column stores it)."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
