"""Triggers of the Gemini Batch provider."""

from __future__ import annotations

from airflow_provider_gemini_batch.triggers.completions import (
    GeminiBatchCompletedTrigger,
    watched_gemini_batch_completed,
)
from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger
from airflow_provider_gemini_batch.triggers.quota import GeminiQuotaWaitTrigger

__all__ = [
    "GeminiBatchCompletedTrigger",
    "GeminiBatchTrigger",
    "GeminiQuotaWaitTrigger",
    "watched_gemini_batch_completed",
]
