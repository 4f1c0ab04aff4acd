"""Operators of the Gemini Batch provider."""

from __future__ import annotations

from airflow_provider_gemini_batch.operators.batch import (
    GeminiBatchBaseOperator,
    GeminiCancelBatchOperator,
    GeminiDeleteBatchOperator,
    GeminiGetBatchOperator,
    GeminiSubmitBatchOperator,
    GeminiSubmitEmbeddingsBatchOperator,
)
from airflow_provider_gemini_batch.operators.caching import (
    GeminiCreateCachedContentOperator,
    GeminiDeleteCachedContentOperator,
)
from airflow_provider_gemini_batch.operators.files import (
    GeminiDeleteFileOperator,
    GeminiDownloadResultsOperator,
    GeminiSplitInputOperator,
    GeminiUploadFileOperator,
)
from airflow_provider_gemini_batch.operators.media import GeminiDeleteMediaOperator, GeminiUploadMediaOperator
from airflow_provider_gemini_batch.operators.webhooks import GeminiCreateWebhookOperator, GeminiDeleteWebhookOperator

__all__ = [
    "GeminiBatchBaseOperator",
    "GeminiCancelBatchOperator",
    "GeminiCreateCachedContentOperator",
    "GeminiCreateWebhookOperator",
    "GeminiDeleteBatchOperator",
    "GeminiDeleteCachedContentOperator",
    "GeminiDeleteFileOperator",
    "GeminiDeleteMediaOperator",
    "GeminiDeleteWebhookOperator",
    "GeminiDownloadResultsOperator",
    "GeminiGetBatchOperator",
    "GeminiSplitInputOperator",
    "GeminiSubmitBatchOperator",
    "GeminiSubmitEmbeddingsBatchOperator",
    "GeminiUploadFileOperator",
    "GeminiUploadMediaOperator",
]
