"""Errors the emulator answers with, in the service's shape.

Every error body is ``{"error": {"code", "message", "status", "details"?}}`` (google.rpc.Status with
the canonical status name), see docs/protocol.md "Errors". Route handlers raise :class:`ApiError`; one
exception handler turns it into the reply.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "STATUS_NAMES",
    "ApiError",
    "error_body",
    "file_not_found",
    "invalid_argument",
    "model_not_found",
    "not_found",
]

#: HTTP status → canonical google.rpc.Code name, as the service pairs them.
STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """An error reply: HTTP status, message, canonical status name and optional details."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the JSON body the service sends for this error."""
        return error_body(self.code, self.message, self.status, self.details)


def error_body(code: int, message: str, status: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build ``{"error": {...}}``; ``details`` is left out when empty, like the service does."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def invalid_argument(message: str) -> ApiError:
    """400 INVALID_ARGUMENT: the request itself is wrong."""
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    """404 NOT_FOUND: unknown batch (or route)."""
    return ApiError(404, message)


def model_not_found(model: str, version: str, method: str) -> ApiError:
    """404 NOT_FOUND: a model the service does not have, or one that does not serve ``method``.

    The service does not tell the two apart: an embedding model on ``batchGenerateContent`` gets
    this same reply (docs/protocol.md "Models").
    """
    return ApiError(
        404,
        f"{model} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def file_not_found(file_name: str) -> ApiError:
    """403 PERMISSION_DENIED: the service does not tell a missing file from a foreign one."""
    return ApiError(
        403,
        f"You do not have permission to access the File {file_name.removeprefix('files/')} or it may not exist.",
    )
