"""Sensors of the Gemini Batch provider."""

from __future__ import annotations

from airflow_provider_gemini_batch.sensors.gemini_batch import GeminiBatchSensor

__all__ = ["GeminiBatchSensor"]
