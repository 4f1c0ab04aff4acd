"""An auth manager for tests: Airflow's simple auth manager, except that one user may not read DAGs."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

DAG_BLIND_USER = "dag-blind"


class DagBlindAuthManager(SimpleAuthManager):
    """``SimpleAuthManager`` where the user ``dag-blind`` is refused every DAG, and so Airflow's DAG list."""

    def is_authorized_dag(self, *, method: Any, user: Any, **kwargs: Any) -> bool:
        return user.get_name() != DAG_BLIND_USER and bool(super().is_authorized_dag(method=method, user=user, **kwargs))
