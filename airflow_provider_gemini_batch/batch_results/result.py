"""``BatchResult``: one result of a batch job, a plain slotted class built straight from a line's JSON.

Part of the results fast path (see ``batch_results/__init__.py``): a pydantic model per line would
halve the rate at which millions of lines are read (``benchmarks/bench_results.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from airflow_provider_gemini_batch.models import Status

#: The token counters of ``usageMetadata`` (docs/protocol.md "Media"): the ``usage`` of a result and of a manifest.
USAGE_COUNTERS = (
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "toolUsePromptTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
)
json_decode = msgspec.json.Decoder().decode
json_encode = msgspec.json.encode


class BatchResult:
    """The outcome of one request in a batch: a response or an error, matched by ``key``.

    Build it from a results-file line (``{"key", "response" | "error", ...}``) with ``from_json``,
    from the same object already parsed with ``from_dict``, or from an inline item
    (``{"response" | "error", "metadata": {"key"}}``) with ``from_inline``. Results may come back in
    any order: always match on ``key``.

    A plain slotted class, not a pydantic model: validating millions of lines as models halves the
    rate they are read at (``benchmarks/bench_results.py``). ``from_json`` and ``from_dict`` check what
    a model would (``key`` a string or absent, ``response`` an object or absent, ``error`` a
    ``Status``) and raise ``ValueError`` otherwise; the constructor takes its arguments as given.
    Public as ``airflow_provider_gemini_batch.models.BatchResult``, the name Airflow's XCom serde
    knows it by (deserialising needs it in ``[core] allowed_deserialization_classes``).

    :param key: the request's key (``None`` for an inline job without one).
    :param response: the raw ``GenerateContentResponse`` (or embedding response), untouched.
    :param error: the request's error.
    :param extra: other top-level fields of the line (the input line's own fields, echoed back).
    :param raw: the results-file line exactly as the service wrote it (``None`` for inline results).
    """

    __module__ = "airflow_provider_gemini_batch.models"  # its public home, and its name for Airflow's serde
    __slots__ = ("error", "extra", "key", "raw", "response")
    __version__: ClassVar[int] = 1  # For Airflow's serde.

    def __init__(
        self,
        key: str | None = None,
        response: dict[str, Any] | None = None,
        error: Status | None = None,
        extra: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.key = key
        self.response = response
        self.error = error
        self.extra = extra or {}
        self.raw = raw

    @classmethod
    def from_json(cls, line: bytes) -> BatchResult:
        """Parse one results-file line; keep the line itself as ``raw``.

        :raises ValueError: the line is not JSON, or not a result object.
        """
        data = json_decode(line)
        if type(data) is not dict:
            raise ValueError(f"a result line must be a JSON object, not {type(data).__name__}")
        return build_result(data, line)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchResult:
        """Build a result from a parsed results-file object. ``data`` is consumed (its fields move into the result).

        :raises ValueError: ``key``, ``response`` or ``error`` has the wrong type.
        """
        return build_result(data, None)

    @classmethod
    def from_inline(cls, item: Mapping[str, Any]) -> BatchResult:
        """Parse one item of an inline job's ``inlinedResponses``."""
        data = dict(item)
        metadata = data.pop("metadata", None) or {}
        data.setdefault("key", metadata.get("key") if isinstance(metadata, Mapping) else None)
        return cls.from_dict(data)

    def __repr__(self) -> str:
        # Key and outcome only: a response can be megabytes, and a repr must never raise.
        return f"BatchResult(key={self.key!r}, succeeded={self.succeeded})"

    def serialize(self) -> dict[str, Any]:
        """Airflow serde (XCom): the result as ``as_dict`` gives it; ``raw`` is not kept."""
        return self.as_dict()

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> BatchResult:
        """Airflow serde (XCom): the inverse of ``serialize``."""
        return BatchResult.from_dict(dict(data))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchResult):
            return NotImplemented
        mine = (self.key, self.response, self.error, self.extra)
        return mine == (other.key, other.response, other.error, other.extra)

    __hash__ = None  # type: ignore[assignment]  # Mutable, like the dicts it holds.

    def as_dict(self) -> dict[str, Any]:
        """The result as a results-file object: ``{"key", "response" | "error", ...extra}``."""
        data: dict[str, Any] = {"key": self.key, **self.extra}
        if self.error is not None:
            data["error"] = self.error.model_dump(mode="json", exclude_defaults=True)
        if self.response is not None:
            data["response"] = self.response
        return data

    @property
    def succeeded(self) -> bool:
        """Whether the request produced a response rather than an error."""
        return self.error is None and self.response is not None

    @property
    def text(self) -> str | None:
        """The first candidate's text parts joined (thoughts left out), or ``None``."""
        candidates = self.response.get("candidates") if self.response else None
        content = candidates[0].get("content") if candidates and type(candidates[0]) is dict else None
        parts = content.get("parts") if type(content) is dict else None
        if not parts or type(parts) is not list:
            return None
        texts = [
            part["text"]
            for part in parts
            if type(part) is dict and type(part.get("text")) is str and not part.get("thought")
        ]
        return "".join(texts) if texts else None

    @property
    def usage(self) -> dict[str, int]:
        """The token counters (``USAGE_COUNTERS``) of ``usageMetadata`` that are not zero; empty for errors.

        An embedding result has one count, ``tokenCount``: the tokens of its input, given as
        ``promptTokenCount`` and ``totalTokenCount``. The service may leave it out; then there is none.
        """
        response = self.response
        metadata = response.get("usageMetadata") if response else None
        if response and metadata is None and "tokenCount" in response:
            tokens = _count(response["tokenCount"])
            return {"promptTokenCount": tokens, "totalTokenCount": tokens} if tokens else {}
        if type(metadata) is not dict:
            return {}
        counts = {name: _count(metadata.get(name)) for name in USAGE_COUNTERS}
        return {name: count for name, count in counts.items() if count}

    @property
    def embedding(self) -> list[float] | None:
        """The embedding values of an embeddings result, or ``None``."""
        embedding = self.response.get("embedding") if self.response else None
        values = embedding.get("values") if type(embedding) is dict else None
        return [float(value) for value in values] if type(values) is list else None


def _count(value: object) -> int:
    # int32 counters arrive as numbers, int64 ones as strings (docs/protocol.md "Wire encoding");
    # anything else is no count.
    if type(value) is int:
        return value
    return int(value) if type(value) is str and value.isdigit() else 0


def build_result(data: dict[str, Any], raw: bytes | None) -> BatchResult:
    # The one hot path of reading results: plain attribute stores, no __init__ call.
    result = _new_result(BatchResult)
    result.key = key = data.pop("key", None)
    result.response = response = data.pop("response", None)
    error = data.pop("error", None)
    result.extra = data
    result.raw = raw
    if key is not None and type(key) is not str:
        raise ValueError(f"'key' must be a string, not {type(key).__name__}")
    if response is not None and type(response) is not dict:
        raise ValueError(f"'response' must be an object, not {type(response).__name__}")
    result.error = None if error is None else Status.model_validate(error)
    return result


_new_result = object.__new__
