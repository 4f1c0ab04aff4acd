"""Every default of the provider, written once, and the deployment settings of ``[gemini_batch]``.

Three kinds of setting, each with one home:

- **Per connection** (extras of a ``gemini`` connection): ``api_version``, ``timeout``,
  ``max_retries``. ``CONNECTION_FIELDS`` and ``CONNECTION_FORM`` declare the form once; both the
  provider info and the hook's ``get_ui_field_behaviour`` read them.
- **Per task** (operator and sensor arguments): ``poll_interval``, ``timeout``, ``outage_limit``;
  their defaults are the constants below.
- **Per deployment** (``airflow.cfg`` section ``[gemini_batch]``, or ``AIRFLOW__GEMINI_BATCH__*``):
  settings of a running component rather than of a task, such as how many polls one triggerer
  sends at once. ``CONFIG_SECTION`` describes them to Airflow (``airflow config list`` shows them)
  and the functions below read them with ``conf``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

#: Where requests go when the connection has no host.
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
#: REST API version: the one Google's Batch Mode documentation uses (``docs/protocol.md``, "Versions and auth").
DEFAULT_API_VERSION = "v1beta"
#: Seconds for one attempt of one request, from connect to the reply's last byte.
DEFAULT_REQUEST_TIMEOUT = 60.0
#: Retries of 408/429/5xx replies and connection errors after the first attempt.
DEFAULT_MAX_RETRIES = 5
#: The first retry's backoff in seconds, doubled on each retry (jittered, capped at a minute).
DEFAULT_RETRY_BASE_DELAY = 1.0
#: Seconds between polls while a job runs.
DEFAULT_POLL_INTERVAL = 30.0
#: How long a task waits for its job before giving up (the service expires jobs after 48 h).
DEFAULT_WAIT_TIMEOUT = timedelta(hours=48)
#: Seconds of failed polls in a row that end a wait (an hour: API incidents are mostly shorter).
DEFAULT_OUTAGE_LIMIT = 3600.0
#: Seconds between polls while the cancel operator waits for a job to stop, and how long it waits.
DEFAULT_CANCEL_POLL_INTERVAL = 10.0
DEFAULT_CANCEL_WAIT_TIMEOUT = 600.0
#: Seconds before a create refused for quota (429 RESOURCE_EXHAUSTED) is sent again when the service
#: names no delay; doubled after each refusal, up to ``DEFAULT_QUOTA_MAX_DELAY`` (``quota.py``).
DEFAULT_QUOTA_RETRY_DELAY = 30.0
DEFAULT_QUOTA_MAX_DELAY = 600.0
#: Bytes per shard when an input is split (sharding.py): 128 MiB under the Files API's 2 GB per
#: input file (docs/protocol.md "Limits"), for the upload's own framing and a little rounding.
DEFAULT_SHARD_MAX_BYTES = 2 * 1024**3 - 128 * 1024**2
#: Hours a context cache must still live when a job that uses it is submitted (jobs queue before
#: they run; the service targets a day): ``[gemini_batch] cache_expiry_margin_hours``. Shorter than
#: the media files' margin, as a cache is billed for every hour it lives.
DEFAULT_CACHE_EXPIRY_MARGIN_HOURS = 1.0
#: Requests the input-token budget guard counts with countTokens before it extrapolates (pricing docs).
DEFAULT_TOKEN_SAMPLE_SIZE = 16
#: Polls in flight at once per triggerer, across every Gemini batch trigger it runs.
DEFAULT_MAX_CONCURRENT_POLLS = 16

#: Events a webhook created by the provider subscribes to: every final state of a batch job.
WEBHOOK_BATCH_EVENTS = ("batch.succeeded", "batch.failed", "batch.cancelled", "batch.expired")
#: The largest webhook body the receiver reads; a completion event is well under 2 KiB.
WEBHOOK_MAX_BODY_BYTES = 64 * 1024
#: Seconds between the safety net's looks at a connection's jobs (one ``list_batches`` walk each).
DEFAULT_COMPLETION_POLL_INTERVAL = 300.0
#: How far back the safety net looks when it has no stored watermark (first start; Airflow < 3.3).
DEFAULT_COMPLETION_LOOKBACK = timedelta(hours=1)
#: Media files uploaded at once by ``GeminiBatchHook.upload_media`` (and looked up at once before a submit).
DEFAULT_MEDIA_PARALLEL_UPLOADS = 8
#: How long a referenced media file must still live when a job is created: a job may wait that long to run.
DEFAULT_MEDIA_EXPIRY_MARGIN_HOURS = 24.0
#: Where the api-server mounts the provider's plugin app (plugins/app.py), and its "Gemini Batches" page.
PLUGIN_URL_PREFIX = "/gemini-batch"
BATCHES_PAGE_PATH = f"{PLUGIN_URL_PREFIX}/batches"
#: Jobs the "Gemini Batches" page lists (the connection's most recent), and how many it reads at most
#: looking for those in the state a filter asks for.
BATCHES_PAGE_JOBS = 100
BATCHES_PAGE_SCAN_LIMIT = 1000
#: Seconds between reloads of a "Gemini Batches" page while a job on it is not finished.
BATCHES_PAGE_REFRESH_SECONDS = 10

SECTION = "gemini_batch"

#: The ``config`` entry of the provider info: Airflow shows it in ``airflow config list`` and
#: ``conf`` falls back to its defaults.
CONFIG_SECTION: dict[str, Any] = {
    SECTION: {
        "description": "Deployment-wide settings of the Gemini Batch provider.",
        "options": {
            "max_concurrent_polls": {
                "description": (
                    "Polls of the Gemini API in flight at once across every Gemini batch trigger of one "
                    "triggerer; the others wait their turn. A thousand triggers polling at the same instant "
                    "would invite 429s and stall the triggerer's event loop in garbage collection (see "
                    "benchmarks/bench_triggers.py). A slot is held for one HTTP attempt, not while a poll "
                    "waits to retry."
                ),
                "version_added": "0.2.0",
                "type": "integer",
                "example": "32",
                "default": str(DEFAULT_MAX_CONCURRENT_POLLS),
            },
            "enqueued_token_limit": {
                "description": (
                    "The enqueued-token limit of the model your jobs use, on your project's tier (for example "
                    "3000000 for Gemini 2.5 Flash on tier 1; see the Gemini API's rate limits page). "
                    "GeminiSplitInputOperator keeps each shard's estimated input tokens under it unless the "
                    "task passes max_tokens; a shard over it could never be created. Empty: no token limit."
                ),
                "version_added": "0.4.0",
                "type": "integer",
                "example": "3000000",
                "default": "",
            },
            "price_table": {
                "description": (
                    "Gemini API prices to use instead of, or beside, the provider's built-in table (an "
                    "estimate as of the date in each entry; see docs/caching-and-cost.md): a JSON object of "
                    "model id to prices in USD per million tokens at the interactive rate, merged over the "
                    "built-in entry field by field. Fields: input, cached_input, output, thinking, "
                    "prices_as_of, source, batch_fraction (the batch price as a share, 0.5). Empty: the "
                    "built-in table."
                ),
                "version_added": "0.4.0",
                "type": "string",
                "example": '{"gemini-2.5-flash": {"input": 0.3, "output": 2.5, "prices_as_of": "2026-01-01"}}',
                "default": "",
            },
            "cache_expiry_margin_hours": {
                "description": (
                    "Hours a context cache must still live after a job is submitted with cached_content=; "
                    "a cache expiring sooner is refused before anything is uploaded (or its TTL extended, "
                    "with extend_cache_ttl=). Jobs queue: raise it when yours wait long to start."
                ),
                "version_added": "0.4.0",
                "type": "float",
                "example": "2",
                "default": str(DEFAULT_CACHE_EXPIRY_MARGIN_HOURS),
            },
            "media_expiry_margin_hours": {
                "description": (
                    "Uploaded media files live 48 hours. Before a job is created, every file its requests "
                    "reference (fileData.fileUri) must still live this many hours, as a job can wait that long "
                    "in the queue; a file expiring sooner is refused, naming the request (docs/media.md)."
                ),
                "version_added": "0.4.0",
                "type": "float",
                "example": "12",
                "default": str(DEFAULT_MEDIA_EXPIRY_MARGIN_HOURS),
            },
        },
    }
}


def max_concurrent_polls() -> int:
    """Read ``[gemini_batch] max_concurrent_polls`` (at least 1)."""
    from airflow.configuration import conf

    value = conf.getint(SECTION, "max_concurrent_polls", fallback=DEFAULT_MAX_CONCURRENT_POLLS)
    return max(1, value)


def enqueued_token_limit() -> int | None:
    """Read ``[gemini_batch] enqueued_token_limit``: ``None`` when unset or empty."""
    from airflow.configuration import conf

    value = conf.get(SECTION, "enqueued_token_limit", fallback="") or ""
    return int(value) if value.strip() else None


def price_table_setting() -> str:
    """Read ``[gemini_batch] price_table``: a JSON object of price overrides, or ``""`` (``pricing.price_table``)."""
    from airflow.configuration import conf

    return conf.get(SECTION, "price_table", fallback="") or ""


def cache_expiry_margin() -> float:
    """Read ``[gemini_batch] cache_expiry_margin_hours`` as seconds a cache must outlive a job's submission."""
    from airflow.configuration import conf

    hours = conf.getfloat(SECTION, "cache_expiry_margin_hours", fallback=DEFAULT_CACHE_EXPIRY_MARGIN_HOURS)
    return max(0.0, hours) * 3600


def media_expiry_margin() -> timedelta:
    """Read ``[gemini_batch] media_expiry_margin_hours`` (at least 0)."""
    from airflow.configuration import conf

    value = conf.getfloat(SECTION, "media_expiry_margin_hours", fallback=DEFAULT_MEDIA_EXPIRY_MARGIN_HOURS)
    return timedelta(hours=max(0.0, value))


#: The extras of a ``gemini`` connection, as the connection form shows them.
CONNECTION_FIELDS: dict[str, Any] = {
    "api_version": {
        "label": "API version",
        "schema": {"type": ["string", "null"], "default": DEFAULT_API_VERSION, "enum": ["v1beta", "v1"]},
        "description": "REST API version: v1beta (the one the Batch Mode docs use) or v1.",
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_REQUEST_TIMEOUT},
        "description": "Seconds for one attempt of one request, from connect to the reply's last byte.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_RETRIES},
        "description": "Retries of 408/429/5xx and connection errors (never of an ambiguous create).",
    },
    "webhook_secret": {
        "label": "Webhook signing secret",
        "schema": {"type": ["string", "null"]},
        "description": (
            "The whsec_... secret that signs webhook deliveries to /gemini-batch/webhooks/<this conn id>. "
            "During a rotation, give both secrets separated by a space."
        ),
    },
}

#: Which standard fields the form hides, relabels and fills with placeholders.
CONNECTION_FORM: dict[str, Any] = {
    "hidden_fields": ["schema", "login", "port"],
    "relabeling": {"password": "API key", "host": "Base URL (optional)"},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "password": "Gemini API key from Google AI Studio",
    },
}
