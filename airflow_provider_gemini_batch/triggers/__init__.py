"""Triggers of the Gemini Batch provider."""

from __future__ import annotations

from airflow_provider_gemini_batch.triggers.gemini_batch import GeminiBatchTrigger

__all__ = ["GeminiBatchTrigger"]
