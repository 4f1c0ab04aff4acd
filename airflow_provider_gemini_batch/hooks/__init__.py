"""Hooks of the Gemini Batch provider."""

from __future__ import annotations

from airflow_provider_gemini_batch.hooks._webhooks import GeminiWebhooksHook
from airflow_provider_gemini_batch.hooks.gemini_batch import GeminiBatchHook

__all__ = ["GeminiBatchHook", "GeminiWebhooksHook"]
