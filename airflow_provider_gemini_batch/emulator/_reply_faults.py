"""Faults that reshape a reply on its way out: cut short (``truncate_reply``) or sent slowly (``trickle``).

Both wrap the ASGI ``send`` of one request, so the route runs as usual (a create still makes its
job) and any reply, JSON or streamed, can be shaped. See ``_faults`` for the parameters.
"""

from __future__ import annotations

import anyio
from starlette.types import Message, Receive, Send

__all__ = ["trickling", "truncating"]


def truncating(send: Send, after_bytes: int) -> Send:
    """Wrap ``send`` so the reply ends cleanly after ``after_bytes`` body bytes.

    A ``Content-Length`` is rewritten to the cut length, so the HTTP reply is complete and only its
    content is short.
    """
    sent = 0
    finished = False

    async def send_truncated(message: Message) -> None:
        nonlocal sent, finished
        if finished:
            return  # the rest of the body is swallowed: the reply has already ended
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            announced = [int(value) for name, value in headers if name.lower() == b"content-length"]
            if announced:
                headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
                headers.append((b"content-length", str(min(after_bytes, announced[0])).encode()))
            await send({**message, "headers": headers})
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")[: after_bytes - sent]
            sent += len(body)
            more_body = bool(message.get("more_body", False)) and sent < after_bytes
            finished = not more_body
            await send({"type": "http.response.body", "body": body, "more_body": more_body})
        else:
            await send(message)

    return send_truncated


def trickling(send: Send, receive: Receive, seconds: float) -> Send:
    """Wrap ``send`` so the body goes one byte every ``seconds``; stop when the client hangs up.

    The status and headers (with the full ``Content-Length``) go at once. Once the client has gone,
    nothing more is sent, so the reply stays incomplete (logged as status 0).
    """
    started = False
    gone = False

    async def send_trickled(message: Message) -> None:
        nonlocal started, gone
        if gone:
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body: bytes = message.get("body", b"")
        async with anyio.create_task_group() as group:

            async def watch_for_hang_up() -> None:
                nonlocal gone
                while (await receive())["type"] != "http.disconnect":
                    pass  # the rest of a request body nobody read
                gone = True
                group.cancel_scope.cancel()

            group.start_soon(watch_for_hang_up)
            for index in range(len(body)):
                if started:
                    await anyio.sleep(seconds)
                started = True
                await send({"type": "http.response.body", "body": body[index : index + 1], "more_body": True})
            group.cancel_scope.cancel()
        if not gone:
            await send({"type": "http.response.body", "body": b"", "more_body": bool(message.get("more_body", False))})

    return send_trickled
