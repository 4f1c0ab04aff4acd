"""How the Gemini API encodes values on the wire, in one place.

- int64 fields are JSON strings and zero-valued fields are omitted (proto3 JSON), see docs/protocol.md "Wire encoding".
- Timestamps are RFC 3339 with nine fractional digits.
- Request fields arrive in camelCase or snake_case: the service's proto-JSON parser accepts both.
- List endpoints page with an opaque ``pageToken``.
- Resource ids (``files/{id}``, ``batches/{id}``) are short lowercase strings.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "camel_to_snake",
    "int64",
    "is_resource_id",
    "new_resource_id",
    "omit_empty",
    "paginate",
    "read_field",
    "timestamp",
]

T = TypeVar("T")

_NANOS_PER_SECOND = 1_000_000_000
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")
_RESOURCE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_resource_id(length: int = 12) -> str:
    """Return a fresh random resource id (``[a-z0-9]``, like the service's)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def is_resource_id(value: str) -> bool:
    """Tell whether ``value`` is a valid file or batch id (``[a-z0-9-]``, at most 40 characters)."""
    return _RESOURCE_ID.fullmatch(value) is not None


def timestamp(epoch_nanos: int) -> str:
    """Format nanoseconds since the epoch as RFC 3339 with nine fractional digits."""
    seconds, nanos = divmod(epoch_nanos, _NANOS_PER_SECOND)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def int64(value: int) -> str | None:
    """Encode an int64 counter as the service does: a string, or nothing when it is zero."""
    return str(value) if value else None


def omit_empty(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the fields proto3 JSON leaves out: ``None``, zero, ``False``, ``""``, ``{}`` and ``[]``."""
    return {key: value for key, value in fields.items() if value not in (None, 0, "", {}, [])}


def camel_to_snake(name: str) -> str:
    """Turn ``displayName`` into ``display_name``."""
    return _CAMEL_HUMP.sub("_", name).lower()


def read_field(message: Mapping[str, Any] | None, camel_name: str, default: Any = None) -> Any:
    """Read a request field sent in camelCase or snake_case (the service accepts both)."""
    if not isinstance(message, Mapping):
        return default
    if camel_name in message:
        return message[camel_name]
    return message.get(camel_to_snake(camel_name), default)


def paginate(
    items: Sequence[T], *, page_size: int | None, page_token: str | None, default_size: int, max_size: int
) -> tuple[Sequence[T], str | None]:
    """Cut one page out of ``items``; return it and the token of the next page, if any.

    :raises ValueError: if the page token was not issued by :func:`paginate`.
    """
    size = default_size if not page_size or page_size <= 0 else min(page_size, max_size)
    start = _decode_page_token(page_token) if page_token else 0
    end = start + size
    next_token = _encode_page_token(end) if end < len(items) else None
    return items[start:end], next_token


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_page_token(token: str) -> int:
    try:
        prefix, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix != "offset" or not offset.isdigit():
            raise ValueError(token)
        return int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"Invalid page token: {token[:40]!r}") from error
