"""Media on the hook's side: image results written as files into a folder, published with the results file.

The decisions (which parts are media, their file names, the decoding) are ``batch_results.media``'s;
this module gives them a folder (local, a URI or an ``ObjectStoragePath``) whose files are written
under hidden temporary names and renamed into place only when the results file is complete, the way
``hooks/_split.py`` publishes shards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_gemini_batch.batch_results.media import MediaExtractor
from airflow_provider_gemini_batch.hooks._split import _Folder


@contextmanager
def media_files(destination: Any, *, keep_inline: bool = False) -> Iterator[MediaExtractor | None]:
    """Yield a ``MediaExtractor`` writing into ``destination`` (``None`` when there is none); publish on success.

    On an error every file written so far is removed, and nothing is published.
    """
    if destination is None:
        yield None
        return
    folder = _Folder(destination)

    def write_file(name: str, pieces: Iterator[bytes]) -> str:
        stream = folder.new_shard(name)
        for piece in pieces:
            stream.write(piece)
        folder.close_current()
        return str(folder.written[-1][1])

    try:
        yield MediaExtractor(write_file, keep_inline=keep_inline)
    except BaseException:
        folder.discard()
        raise
    folder.close_current()
    folder.publish()
