"""What a test searches for a secret in the output of a task run under ``dag.test()``."""

from __future__ import annotations

#: Lines Airflow 3.0's in-process supervisor logs at DEBUG for each message a task sends it, value
#: included: registering a secret with the masker, and storing a Variable. Airflow sends the first
#: itself for every connection password it reads, whatever the provider. Airflow 3.3 omits the bodies.
AIRFLOW_3_0_MESSAGE_LOGS = ("MaskSecret(value=", "PutVariable(key=")


def searchable(printed: str) -> str:
    """``printed`` without Airflow 3.0's own message logs (above); on 3.3 every line is kept.

    Only those DEBUG lines are dropped; every other line is still searched.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:
        return printed
    return "\n".join(
        line for line in printed.splitlines() if not any(mark in line for mark in AIRFLOW_3_0_MESSAGE_LOGS)
    )
