"""Tests of the Gemini Batch emulator (mirrors ``airflow_provider_gemini_batch/emulator``)."""
