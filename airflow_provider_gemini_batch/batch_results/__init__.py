"""Batch results, the fast path: a results file's bytes read into ``BatchResult``s, or spliced into a results file.

Pure and streaming, like ``batch_input``: chunks of a results file come in (cut anywhere, and read
again after a body that ended early), results or written lines go out; the hook does the HTTP
(``GeminiBatchHook.iter_results`` and ``write_results``). This runs once per result, millions of
times for a large job: flat loops over bytes, with ``benchmarks/bench_results.py`` as the
regression check (its docstring says where the time goes).

- ``ResultsFile.results`` decodes each whole line (msgspec, untyped) into a ``BatchResult``.
- ``ResultsWriter`` decodes only what it adds to a line, into small ``msgspec.Struct``s (key,
  the first candidate's text parts, ``usageMetadata``; for embeddings the token count and the
  values as raw JSON), and splices the additions onto the service's own bytes: the response is
  never built as Python objects nor serialised again, which keeps it about as fast as reading results.
  A line it does not expect (an error, no key, a field named like ours, a shape the structs do
  not fit) goes the long way, through ``BatchResult``, to the same fields.

What is read is checked against the job's ``batchStats.requestCount`` or the expected keys: a results
body sent without a length can end early and look whole (``docs/protocol.md``, "Results").
"""

from airflow_provider_gemini_batch.batch_results.reading import ResultsFile, check_complete, expected_result_count
from airflow_provider_gemini_batch.batch_results.result import USAGE_COUNTERS, BatchResult
from airflow_provider_gemini_batch.batch_results.writing import ResultsSummary, ResultsWriter

__all__ = [
    "USAGE_COUNTERS",
    "BatchResult",
    "ResultsFile",
    "ResultsSummary",
    "ResultsWriter",
    "check_complete",
    "expected_result_count",
]
