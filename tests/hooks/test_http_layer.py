"""Unit tests of the hook's HTTP layer on ``httpx.MockTransport``: requests, parsing, retries, errors."""

from __future__ import annotations

import email.utils
import io
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchConfigError,
    GeminiBatchConnectionError,
    GeminiBatchError,
    GeminiBatchInputError,
    GeminiBatchInvalidArgumentError,
    GeminiBatchNotFoundError,
    GeminiBatchPermissionError,
    GeminiBatchRateLimitError,
    GeminiBatchServerError,
)
from airflow_provider_gemini_batch.hooks import GeminiBatchHook
from airflow_provider_gemini_batch.models import Batch, BatchResult, BatchState
from tests.hooks.conftest import BASE_URL, FAKE_KEY, Handler, error_reply, operation

MakeHook = Callable[[Handler], GeminiBatchHook]


class Recorder:
    """A handler that answers from a list of replies (or exceptions) and records every request."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def retry_info(delay: str) -> list[dict[str, str]]:
    return [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]


class TestRequests:
    def test_key_travels_in_the_header_and_never_in_the_url(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.Response(200, json=operation()))
        batch = make_hook(recorder).get_batch("batches/b1")
        request = recorder.requests[0]
        assert request.headers["x-goog-api-key"] == FAKE_KEY
        assert FAKE_KEY not in str(request.url)
        assert request.url.path == "/v1beta/batches/b1"
        assert batch.state is BatchState.PENDING

    def test_api_version_comes_from_the_connection_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {
            "conn_type": "gemini",
            "host": "https://gemini.test",
            "password": FAKE_KEY,
            "extra": {"api_version": "v1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        recorder = Recorder(httpx.Response(200, json=operation()))
        GeminiBatchHook(transport=httpx.MockTransport(recorder)).get_batch("batches/b1")
        assert recorder.requests[0].url.path == "/v1/batches/b1"

    def test_cancel_is_a_post_and_delete_a_delete(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.Response(200, json={}))
        hook = make_hook(recorder)
        hook.cancel_batch("batches/b1")
        hook.delete_batch("batches/b1")
        assert [(r.method, r.url.path) for r in recorder.requests] == [
            ("POST", "/v1beta/batches/b1:cancel"),
            ("DELETE", "/v1beta/batches/b1"),
        ]

    def test_inline_create_body_carries_keys_as_metadata(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.Response(200, json=operation()))
        make_hook(recorder).create_batch(
            "gemini-2.5-flash",
            requests=[{"key": "k1", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}],
            display_name="nightly",
        )
        request = recorder.requests[0]
        assert request.url.path == "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
        assert json.loads(request.content) == {
            "batch": {
                "displayName": "nightly",
                "inputConfig": {
                    "requests": {
                        "requests": [
                            {"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "k1"}}
                        ]
                    }
                },
            }
        }

    def test_file_create_and_embeddings_paths(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.Response(200, json=operation()))
        hook = make_hook(recorder)
        hook.create_batch("models/gemini-2.5-flash", input_file="files/abc")
        hook.create_embeddings_batch("gemini-embedding-001", input_file="files/abc")
        assert [r.url.path for r in recorder.requests] == [
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            "/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent",
        ]
        assert json.loads(recorder.requests[0].content) == {"batch": {"inputConfig": {"fileName": "files/abc"}}}

    @pytest.mark.parametrize(
        ("call", "fragment"),
        [
            (lambda h: h.create_batch("../etc", input_file="files/a"), "model"),
            (lambda h: h.create_batch("gemini?x=1", input_file="files/a"), "model"),
            (lambda h: h.create_batch("gemini&x", input_file="files/a"), "model"),
            (lambda h: h.create_batch("gemini-2.5-flash"), "exactly one"),
            (lambda h: h.create_batch("gemini-2.5-flash", requests=[]), "empty"),
            (lambda h: h.create_batch("gemini-2.5-flash", requests=[{"request": "hi"}]), "must be an object"),
            (lambda h: h.get_batch("abc"), "batches/<id>"),
            (lambda h: h.get_batch(""), "empty"),
            (lambda h: h.get_file("batches/x"), "files/<id>"),
        ],
    )
    def test_bad_names_and_inputs_fail_before_any_io(
        self, make_hook: MakeHook, call: Callable[[GeminiBatchHook], object], fragment: str
    ) -> None:
        recorder = Recorder(httpx.Response(200, json=operation()))
        with pytest.raises(GeminiBatchInputError, match=fragment):
            call(make_hook(recorder))
        assert recorder.requests == []

    def test_list_batches_follows_every_page(self, make_hook: MakeHook) -> None:
        recorder = Recorder(
            httpx.Response(200, json={"operations": [operation("batches/a")], "nextPageToken": "p2"}),
            httpx.Response(200, json={"operations": [operation("batches/b")]}),
        )
        names = [batch.name for batch in make_hook(recorder).list_batches(page_size=1)]
        assert names == ["batches/a", "batches/b"]
        assert recorder.requests[1].url.params["pageToken"] == "p2"

    def test_an_empty_list_is_an_empty_object(self, make_hook: MakeHook) -> None:
        assert list(make_hook(Recorder(httpx.Response(200, json={}))).list_files()) == []


class TestErrors:
    @pytest.mark.parametrize(
        ("code", "status", "cls"),
        [
            (400, "INVALID_ARGUMENT", GeminiBatchInvalidArgumentError),
            (403, "PERMISSION_DENIED", GeminiBatchPermissionError),
            (404, "NOT_FOUND", GeminiBatchNotFoundError),
        ],
    )
    def test_status_maps_to_one_class_without_retrying(
        self, make_hook: MakeHook, code: int, status: str, cls: type[Exception]
    ) -> None:
        recorder = Recorder(error_reply(code, status, "x" * 5000))
        with pytest.raises(cls) as raised:
            make_hook(recorder).get_batch("batches/b1")
        assert len(recorder.requests) == 1
        assert len(str(raised.value)) < 600, "the service message is truncated"
        assert FAKE_KEY not in str(raised.value)

    def test_invalid_key_says_to_check_the_password_field(self, make_hook: MakeHook) -> None:
        reply = error_reply(
            400,
            "INVALID_ARGUMENT",
            "API key not valid.",
            details=[{"@type": "x.ErrorInfo", "reason": "API_KEY_INVALID"}],
        )
        with pytest.raises(GeminiBatchInvalidArgumentError, match="password field") as raised:
            make_hook(Recorder(reply)).get_batch("batches/b1")
        assert raised.value.reason == "API_KEY_INVALID"

    def test_429_twice_then_success_waits_the_retry_info_delay(self, make_hook: MakeHook) -> None:
        busy = error_reply(429, "RESOURCE_EXHAUSTED", "quota", details=retry_info("0.2s"))
        recorder = Recorder(busy, busy, httpx.Response(200, json=operation()))
        started = time.monotonic()
        make_hook(recorder).get_batch("batches/b1")
        assert len(recorder.requests) == 3
        assert time.monotonic() - started >= 0.4

    def test_retry_after_header_is_honoured(self, make_hook: MakeHook) -> None:
        busy = error_reply(503, "UNAVAILABLE", "later", headers={"retry-after": "0.3"})
        recorder = Recorder(busy, httpx.Response(200, json=operation()))
        make_hook(recorder).get_batch("batches/b1")
        assert recorder.times[1] - recorder.times[0] >= 0.3

    def test_an_unreadable_retry_after_is_ignored_not_raised(self, make_hook: MakeHook) -> None:
        busy = error_reply(503, "UNAVAILABLE", "later", headers={"retry-after": "soon"})
        recorder = Recorder(busy, httpx.Response(200, json=operation()))
        assert make_hook(recorder).get_batch("batches/b1").name == "batches/b1"
        assert len(recorder.requests) == 2

    def test_a_retry_after_date_is_honoured(self, make_hook: MakeHook) -> None:
        when = email.utils.formatdate(time.time() + 2, usegmt=True)  # Whole seconds: between 1 and 2 s away.
        busy = error_reply(503, "UNAVAILABLE", "later", headers={"retry-after": when})
        recorder = Recorder(busy, httpx.Response(200, json=operation()))
        make_hook(recorder).get_batch("batches/b1")
        assert recorder.times[1] - recorder.times[0] >= 0.9

    def test_gives_up_after_max_retries(self, make_hook: MakeHook) -> None:
        recorder = Recorder(error_reply(500, "INTERNAL", "boom"))
        with pytest.raises(GeminiBatchServerError):
            make_hook(recorder).get_batch("batches/b1")
        assert len(recorder.requests) == 4, "one attempt and max_retries=3 retries"

    def test_an_unreadable_success_reply_is_a_server_error(self, make_hook: MakeHook) -> None:
        html = httpx.Response(200, text="<html>proxy login</html>")
        with pytest.raises(GeminiBatchServerError, match="could not be read"):
            make_hook(Recorder(html)).get_batch("batches/b1")
        with pytest.raises(GeminiBatchServerError, match="could not be read"):
            make_hook(Recorder(httpx.Response(200, json={}))).get_batch("batches/b1")

    def test_rate_limit_after_retries_is_its_own_class(self, make_hook: MakeHook) -> None:
        with pytest.raises(GeminiBatchRateLimitError):
            make_hook(Recorder(error_reply(429, "RESOURCE_EXHAUSTED", "quota"))).get_batch("batches/b1")

    def test_connection_errors_are_retried_then_reported(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.ConnectError("refused"))
        with pytest.raises(GeminiBatchConnectionError, match="after 4 attempts"):
            make_hook(recorder).get_batch("batches/b1")

    def test_missing_connection_and_empty_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with pytest.raises(GeminiBatchConfigError, match="does not exist"):
            GeminiBatchHook("no_such_connection").get_batch("batches/b1")
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_EMPTY", json.dumps({"conn_type": "gemini", "password": ""}))
        with pytest.raises(GeminiBatchConfigError, match="no API key"):
            GeminiBatchHook("gemini_empty").get_batch("batches/b1")

    def test_a_hook_from_credentials_reads_no_connection_and_checks_them_as_a_connection(self) -> None:
        """common-ai hands its adapters a connection's password and host, not its id."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=operation("batches/b1", "BATCH_STATE_RUNNING"))

        hook = GeminiBatchHook.for_api_key(
            FAKE_KEY, BASE_URL, source="The connection given", transport=httpx.MockTransport(handler)
        )
        assert hook.get_batch("batches/b1").state is BatchState.RUNNING
        assert seen[0].headers["x-goog-api-key"] == FAKE_KEY
        assert str(seen[0].url) == f"{BASE_URL}/v1beta/batches/b1"
        with pytest.raises(GeminiBatchConfigError, match=r"^The connection given has no API key"):
            GeminiBatchHook.for_api_key(None, BASE_URL, source="The connection given")
        with pytest.raises(GeminiBatchConfigError, match="has host 'ftp://x'"):
            GeminiBatchHook.for_api_key(FAKE_KEY, "ftp://x", source="The connection given")


class TestCreateIsNeverResentBlindly:
    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ReadError("reset"),
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("dropped"),
            error_reply(500, "INTERNAL", "?"),
            error_reply(503, "UNAVAILABLE", "?"),
        ],
    )
    def test_lost_reply_raises_ambiguous_create_after_one_send(
        self, make_hook: MakeHook, failure: httpx.Response | Exception
    ) -> None:
        recorder = Recorder(failure, httpx.Response(200, json=operation()))
        with pytest.raises(GeminiBatchAmbiguousCreateError, match="NOT resent") as raised:
            make_hook(recorder).create_batch("gemini-2.5-flash", input_file="files/a", display_name="nightly")
        assert len(recorder.requests) == 1
        assert raised.value.display_name == "nightly"

    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ConnectError("refused"),
            error_reply(429, "RESOURCE_EXHAUSTED", "q"),
        ],
    )
    def test_a_create_that_never_arrived_is_retried(
        self, make_hook: MakeHook, failure: httpx.Response | Exception
    ) -> None:
        recorder = Recorder(failure, httpx.Response(200, json=operation()))
        batch = make_hook(recorder).create_batch("gemini-2.5-flash", input_file="files/a")
        assert batch.name == "batches/b1"
        assert len(recorder.requests) == 2


class _BreakingStream(httpx.SyncByteStream):
    """A response body that delivers some bytes, then loses the connection."""

    def __init__(self, data: bytes, break_after: int | None) -> None:
        self.data = data
        self.break_after = break_after

    def __iter__(self) -> Iterator[bytes]:
        if self.break_after is None:
            yield self.data
            return
        yield self.data[: self.break_after]
        raise httpx.ReadError("connection reset")


class TestDownloadsAndResults:
    def _file_server(self, data: bytes, break_after: int | None, honour_range: bool) -> Recorder:
        recorder = Recorder(httpx.Response(200))

        def serve(request: httpx.Request) -> httpx.Response:
            recorder.requests.append(request)
            first = len(recorder.requests) == 1
            start = int(request.headers.get("range", "bytes=0-")[6:-1]) if honour_range else 0
            stream = _BreakingStream(data[start:], break_after if first else None)
            return httpx.Response(206 if start else 200, stream=stream)

        recorder.__call__ = serve  # type: ignore[method-assign]
        return recorder

    @pytest.mark.parametrize("honour_range", [True, False])
    def test_a_dropped_download_resumes_and_the_file_is_whole(
        self, make_hook: MakeHook, tmp_path: object, honour_range: bool
    ) -> None:
        data = b"".join(b'{"key": "k%d", "response": {}}\n' % i for i in range(5000))
        recorder = self._file_server(data, break_after=12345, honour_range=honour_range)
        hook = make_hook(lambda request: recorder.__call__(request))
        destination = f"{tmp_path}/out/results.jsonl"
        assert hook.download_file("files/batch-1", destination) == len(data)
        with open(destination, "rb") as written:
            assert written.read() == data
        assert len(recorder.requests) == 2
        assert recorder.requests[0].url.path == "/download/v1beta/files/batch-1:download"
        assert recorder.requests[0].url.params["alt"] == "media"

    def test_results_from_a_file_are_streamed_line_by_line(self, make_hook: MakeHook) -> None:
        lines = [
            {"key": "a", "response": {"candidates": [{"content": {"parts": [{"text": "A"}, {"text": "!"}]}}]}},
            {"key": "b", "error": {"code": 3, "message": "bad", "status": "INVALID_ARGUMENT"}},
        ]
        body = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
        finished = operation(state="BATCH_STATE_SUCCEEDED", output={"responsesFile": "files/batch-b1"})

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith(":download"):
                return httpx.Response(200, content=body)
            return httpx.Response(200, json={**finished, "done": True})

        results = list(make_hook(handler).iter_results("batches/b1"))
        assert [(r.key, r.text, r.succeeded) for r in results] == [("a", "A!", True), ("b", None, False)]
        assert results[1].error is not None
        assert results[1].error.status == "INVALID_ARGUMENT"

    def test_inline_results_are_read_from_the_operation(self, make_hook: MakeHook) -> None:
        items = [{"response": {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}, "metadata": {"key": "k1"}}]
        finished = operation(state="BATCH_STATE_SUCCEEDED", output={"inlinedResponses": {"inlinedResponses": items}})
        results = list(make_hook(Recorder(httpx.Response(200, json=finished))).iter_results("batches/b1"))
        assert [(r.key, r.text) for r in results] == [("k1", "hi")]


class TestAsyncTwins:
    async def test_aget_and_alist_share_parsing_and_retries(self, make_hook: MakeHook) -> None:
        recorder = Recorder(
            error_reply(503, "UNAVAILABLE", "later"),
            httpx.Response(200, json=operation(state="BATCH_STATE_RUNNING", batchStats={"requestCount": "4"})),
            httpx.Response(200, json={"operations": [operation("batches/a")]}),
        )
        hook = make_hook(recorder)
        batch = await hook.aget_batch("batches/b1")
        assert batch.state is BatchState.RUNNING
        assert batch.batch_stats.request_count == 4
        assert [b.name async for b in hook.alist_batches()] == ["batches/a"]
        assert recorder.requests[0].headers["x-goog-api-key"] == FAKE_KEY
        await hook.aclose()

    async def test_acancel_and_adelete(self, make_hook: MakeHook) -> None:
        recorder = Recorder(httpx.Response(200, json={}))
        hook = make_hook(recorder)
        await hook.acancel_batch("batches/b1")
        await hook.adelete_batch("batches/b1")
        assert [r.method for r in recorder.requests] == ["POST", "DELETE"]
        await hook.aclose()


class TestResultsFile:
    """``iter_results`` over a results file that arrives in awkward pieces."""

    @staticmethod
    def results(make_hook: MakeHook, *chunks: bytes) -> list[BatchResult]:
        hook = make_hook(lambda request: httpx.Response(200, content=iter(chunks)))
        return list(hook.iter_results(Batch(name="batches/b", responses_file="files/r")))

    def test_lines_split_across_chunks_blank_lines_and_a_missing_final_newline(self, make_hook: MakeHook) -> None:
        results = self.results(
            make_hook,
            b'{"key": "a", "resp',
            b'onse": {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}}\r\n\n   \n{"key": "b", "err',
            b'or": {"code": 3, "message": "bad"}, "ticket": "T-2"}\n',
            b'{"key": "c", "response": {}}',
        )
        assert [(r.key, r.text, r.succeeded) for r in results] == [
            ("a", "hi", True),
            ("b", None, False),
            ("c", None, True),
        ]
        assert results[1].error is not None
        assert results[1].error.message == "bad"
        assert results[1].extra == {"ticket": "T-2"}
        assert results[2].raw == b'{"key": "c", "response": {}}'

    @pytest.mark.parametrize("bad", [b"not json", b'["a list"]', b'{"key": 7}', b'{"key": "k", "response": "text"}'])
    def test_a_bad_line_is_reported_with_its_line_number(self, make_hook: MakeHook, bad: bytes) -> None:
        with pytest.raises(GeminiBatchError, match=r"^Line 3 of results file files/r is not a valid result object"):
            self.results(make_hook, b'{"key": "a", "response": {}}\n\n', bad + b"\n" + b'{"key": "z", "response": {}}')

    def test_a_line_longer_than_many_chunks_is_read_whole(self, make_hook: MakeHook) -> None:
        text = "y" * 100_000
        line = json.dumps({"key": "long", "response": {"candidates": [{"content": {"parts": [{"text": text}]}}]}})
        data = line.encode() + b"\n" + b'{"key": "next", "response": {}}'
        chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        (long, after) = self.results(make_hook, *chunks)
        assert (long.key, long.text, after.key) == ("long", text, "next")


class _UploadServer:
    """A resumable upload session that breaks the first chunk's connection after ``keep`` bytes
    and then answers the query with ``claim`` (default: what it really kept)."""

    def __init__(self, keep: int, claim: int | None = None) -> None:
        self.keep, self.claim = keep, claim
        self.stored = bytearray()
        self.broke = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        command = request.headers.get("x-goog-upload-command", "")
        if command == "start":
            url = f"{BASE_URL}/upload/v1beta/files?upload_id=u1"
            return httpx.Response(200, headers={"x-goog-upload-url": url, "x-goog-upload-chunk-granularity": "4"})
        if command == "query":
            received = len(self.stored) if self.claim is None else self.claim
            return httpx.Response(
                200, headers={"x-goog-upload-status": "active", "x-goog-upload-size-received": str(received)}
            )
        body = request.read()
        assert int(request.headers["x-goog-upload-offset"]) == len(self.stored)
        if not self.broke:
            self.broke = True
            self.stored += body[: self.keep]
            raise httpx.ReadError("connection reset")
        self.stored += body
        if "finalize" not in command:
            return httpx.Response(200, headers={"x-goog-upload-status": "active"})
        file = {"name": "files/f1", "sizeBytes": str(len(self.stored)), "state": "ACTIVE"}
        return httpx.Response(200, headers={"x-goog-upload-status": "final"}, json={"file": file})


class TestUploadResume:
    def test_resumes_from_the_servers_count_even_mid_chunk(self, make_hook: MakeHook) -> None:
        server = _UploadServer(keep=5)
        data = io.BytesIO(b"prefix:" + bytes(range(256)) * 3)
        data.seek(7)  # the upload starts where the stream stands
        uploaded = make_hook(server).upload_file(data, chunk_bytes=400)
        assert bytes(server.stored) == bytes(range(256)) * 3
        assert uploaded.size_bytes == 768

    def test_a_count_beyond_what_was_sent_is_refused(self, make_hook: MakeHook) -> None:
        server = _UploadServer(keep=5, claim=500)  # the first chunk was 400 bytes
        with pytest.raises(GeminiBatchError, match=r"reports 500 bytes .* received, but only 400 were sent"):
            make_hook(server).upload_file(io.BytesIO(bytes(768)), chunk_bytes=400)


@pytest.mark.parametrize(("name", "says"), [("", "The batch name is empty"), ("files/x", "is not a batch name")])
def test_a_bad_batch_name_is_named_in_plain_words(make_hook: MakeHook, name: str, says: str) -> None:
    hook = make_hook(lambda request: httpx.Response(500))
    with pytest.raises(GeminiBatchInputError, match=says):
        hook.get_batch(name)
