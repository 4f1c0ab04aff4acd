"""Media inputs: which files a batch input references, and whether each can still be used when the job starts.

Requests reference uploaded media (images, PDFs, audio) by a part
``{"fileData": {"mimeType": "image/jpeg", "fileUri": "https://.../files/abc"}}``. Uploaded files
last 48 hours and a job can wait in the queue for many of them, so before a job is created every
referenced file is looked up (by ``GeminiBatchHook.check_media_references``) and judged here: it must
exist (a missing, expired or foreign file answers 403), be ``ACTIVE``, and not expire within the
margin (``[gemini_batch] media_expiry_margin_hours``). Pure: no I/O, tested with plain values.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchInputError

if TYPE_CHECKING:
    from airflow_provider_gemini_batch.models import GeminiFile

__all__ = [
    "FILE_LIFETIME",
    "LINE_MARKS",
    "MediaReferences",
    "file_name_of_uri",
    "file_problem",
    "media_mime_type",
    "records_places",
    "referenced_uris",
    "refuse_unusable",
]

#: How long the Files API keeps an uploaded file (docs/media.md).
FILE_LIFETIME = timedelta(hours=48)
#: Places (line numbers, request indexes) an error names per file; the count says how many more.
_PLACES_NAMED = 3
_FILE_ID = re.compile(r"(?:^|/)files/([a-z0-9-]{1,40})(?:$|[?#:])")
#: Byte strings without which a JSONL line references no file: only such lines are parsed.
LINE_MARKS = (b"fileUri", b"file_uri")
# Types mimetypes does not know everywhere, that the service takes.
_EXTRA_TYPES = {".webp": "image/webp", ".heic": "image/heic", ".heif": "image/heif", ".flac": "audio/flac"}
_MEDIA_FAMILIES = ("image/", "audio/", "video/", "application/pdf", "text/")


def media_mime_type(path: str) -> str:
    """The MIME type of a media file, from its extension.

    :raises GeminiBatchInputError: naming the file, when the extension says nothing the service takes.
    """
    extension = os.path.splitext(path)[1].lower()
    mime_type = _EXTRA_TYPES.get(extension) or mimetypes.guess_type(f"x{extension}")[0]
    if mime_type is None or not mime_type.startswith(_MEDIA_FAMILIES):
        raise GeminiBatchInputError(
            f"{path!r} has no known media type (images, PDFs, audio, video or text): rename it with its "
            "extension (.png, .jpg, .pdf, .mp3, ...) or leave it out."
        )
    return mime_type


def file_name_of_uri(uri: str) -> str | None:
    """``files/{id}`` from a ``fileData.fileUri`` (``https://.../v1beta/files/abc`` or ``files/abc``); else ``None``."""
    found = _FILE_ID.search(uri)
    return f"files/{found.group(1)}" if found else None


def referenced_uris(value: Any) -> Iterator[str]:
    """Every ``fileData.fileUri`` (or ``file_data.file_uri``) in a request or record, at any depth."""
    if isinstance(value, Mapping):
        for name in ("fileData", "file_data"):
            data = value.get(name)
            if isinstance(data, Mapping):
                uri = data.get("fileUri", data.get("file_uri"))
                if isinstance(uri, str):
                    yield uri
        for child in value.values():
            if isinstance(child, (Mapping, list)):
                yield from referenced_uris(child)
    elif isinstance(value, list):
        for child in value:
            yield from referenced_uris(child)


@dataclass
class MediaReferences:
    """The files a batch input references, each with the first places that reference it.

    Memory grows with the number of distinct files, not of requests.
    """

    places: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def add(self, uri: str, place: str) -> None:
        """Note that ``place`` (``line 3``, ``requests[2]``) references ``uri``."""
        name = file_name_of_uri(uri)
        if name is None:
            if len(self.unreadable) < _PLACES_NAMED:
                self.unreadable.append(f"{place}: fileUri {uri[:100]!r} names no files/... resource")
            return
        count = self.counts[name] = self.counts.get(name, 0) + 1
        if count <= _PLACES_NAMED:
            self.places.setdefault(name, []).append(place)

    def add_record(self, record: Any, place: str) -> None:
        """Note every file ``record`` (a request, or a record around one) references."""
        for uri in referenced_uris(record):
            self.add(uri, place)

    def where(self, name: str) -> str:
        """The places referencing ``name``, for a message: ``line 3, line 7 and 12 more``."""
        places = ", ".join(self.places.get(name, []))
        more = self.counts.get(name, 0) - len(self.places.get(name, []))
        return f"{places} and {more} more" if more > 0 else places


def records_places(records: Iterable[Any]) -> Iterator[tuple[Any, str]]:
    """Pair each record of a ``requests`` list with how an error names it: ``requests[i]``."""
    for index, record in enumerate(records):
        yield record, f"requests[{index}]"


def file_problem(name: str, found: GeminiFile | None, now: datetime, margin: timedelta) -> str | None:
    """What keeps the job from using file ``name`` (looked up as ``found``), or ``None`` when it can.

    :param found: the file as the Files API returned it; ``None`` when it answered 403.
    :param margin: how long the file must still live after ``now``: a job may wait that long to start.
    """
    if found is None:
        return (
            "not found with this API key (403): it was deleted, expired 48 h after its upload, or belongs to "
            "another project; upload it again with this connection's key"
        )
    if found.state is not None and found.state != "ACTIVE":
        what = "is still PROCESSING: wait until it is ACTIVE" if found.state == "PROCESSING" else "could not be used"
        return f"is {found.state}, not ACTIVE ({what}); upload it again if it FAILED"
    if found.expiration_time is not None:
        left = found.expiration_time - now
        if left < margin:
            hours = max(left.total_seconds(), 0) / 3600
            return (
                f"expires at {found.expiration_time.isoformat()} ({hours:.1f} h from now), within the "
                f"{margin.total_seconds() / 3600:g} h a job may wait before it runs "
                "([gemini_batch] media_expiry_margin_hours): upload it again"
            )
    return None


def refuse_unusable(references: MediaReferences, problems: Mapping[str, str], source: str) -> None:
    """Raise one error naming every unusable file, where it is referenced and why; nothing when all are usable.

    :param source: what was checked, for the message (``"the requests"``, ``"in.jsonl"``).
    """
    lines = [f"{name} ({references.where(name)}): {problem}" for name, problem in sorted(problems.items())]
    lines += references.unreadable
    if lines:
        raise GeminiBatchInputError(
            f"{len(lines)} media file reference(s) of {source} cannot be used, so no job was created:\n  "
            + "\n  ".join(lines)
        )
