"""The Webhooks half of ``GeminiBatchHook``: project-level webhooks that announce finished jobs.

A base class of the hook, as the Files API half (``_files.py``) is: users call these methods on
``GeminiBatchHook``. The resource, its events and what is known of deliveries: ``docs/protocol.md``,
"Webhooks". A signing secret is never logged: the models hold it as a ``SecretStr``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_gemini_batch.exceptions import (
    GeminiBatchAmbiguousCreateError,
    GeminiBatchAmbiguousWebhookCreateError,
    GeminiBatchAPIError,
)
from airflow_provider_gemini_batch.hooks import _endpoints
from airflow_provider_gemini_batch.hooks._base import GeminiBaseHook
from airflow_provider_gemini_batch.hooks._endpoints import RevokePrevious, apages, pages
from airflow_provider_gemini_batch.models import RotatedSigningSecret, Webhook
from airflow_provider_gemini_batch.settings import WEBHOOK_BATCH_EVENTS


class GeminiWebhooksHook(GeminiBaseHook):
    """Webhooks methods of ``GeminiBatchHook`` (use that class; parameters as its)."""

    def create_webhook(
        self,
        uri: str,
        *,
        subscribed_events: Sequence[str] = WEBHOOK_BATCH_EVENTS,
        display_name: str | None = None,
        webhook_id: str | None = None,
    ) -> Webhook:
        """Register a webhook: the service will POST the subscribed events to ``uri``.

        **THE SIGNING SECRET IS RETURNED ONCE, HERE, AND CAN NEVER BE READ AGAIN.** It is in the
        reply's ``new_signing_secret`` (a ``SecretStr``: ``.get_secret_value()``). Store it at once
        where the receiver reads it (the connection extra ``webhook_secret``); if it is lost, the only
        way to get a secret is ``rotate_webhook_signing_secret``. It is never logged here.

        Creates are not known to be idempotent. Without ``webhook_id`` a create whose reply was lost
        is never resent (``GeminiBatchAmbiguousWebhookCreateError``). With ``webhook_id`` it is resent, and a
        webhook of that id that exists already (made by the lost attempt, or by an earlier run) is
        fetched and returned instead: then ``new_signing_secret`` is ``None``, since the secret was
        issued by the create that made it.

        :param uri: the absolute http(s) URL the service POSTs to, e.g.
            ``https://airflow.example.com/gemini-batch/webhooks/gemini_default``.
        :param subscribed_events: event types; by default every final state of a batch job.
        :param display_name: a label for the webhook (the service's ``name`` field in the create body).
        :param webhook_id: the id to create it under (``webhooks/{webhook_id}``); letters, digits, ``-``, ``_``.
        """
        call = _endpoints.create_webhook(
            uri, subscribed_events=subscribed_events, display_name=display_name, webhook_id=webhook_id
        )
        try:
            created = self.client.call(call)
        except GeminiBatchAmbiguousCreateError as exc:
            sent = exc.__cause__
            cause = f"HTTP {sent.http_status}" if isinstance(sent, GeminiBatchAPIError) else type(sent).__name__
            raise GeminiBatchAmbiguousWebhookCreateError(uri, cause) from exc
        except GeminiBatchAPIError as exc:
            if exc.http_status != 409 or webhook_id is None:
                raise
            existing = self.get_webhook(f"webhooks/{webhook_id}")
            self.log.info(
                "Webhook %s already exists (to %s); its signing secret was issued when it was created",
                existing.name,
                existing.uri,
            )
            if existing.uri != uri.strip() or sorted(existing.subscribed_events) != sorted(subscribed_events):
                self.log.warning(
                    "Webhook %s delivers %s to %s, not what was asked (%s to %s): update_webhook changes it",
                    existing.name,
                    existing.subscribed_events,
                    existing.uri,
                    list(subscribed_events),
                    uri,
                )
            return existing
        self.log.info("Created webhook %s to %s for %s", created.name, created.uri, created.subscribed_events)
        return created

    def get_webhook(self, name: str) -> Webhook:
        """Get a webhook (``webhooks/...``); its signing secrets are listed truncated, never whole."""
        return self.client.call(_endpoints.get_webhook(name))

    def list_webhooks(self, *, page_size: int | None = None) -> Iterator[Webhook]:
        """Iterate over every webhook of the project, page after page.

        :param page_size: webhooks per page, 1 to 1000 (the service's default is 50).
        """
        return pages(lambda token: self.client.call(_endpoints.list_webhooks(page_size, token)))

    def update_webhook(
        self, name: str, *, uri: str | None = None, subscribed_events: Sequence[str] | None = None
    ) -> Webhook:
        """Change where a webhook delivers, or which events; only the fields given are sent (``update_mask``)."""
        updated = self.client.call(_endpoints.update_webhook(name, uri=uri, subscribed_events=subscribed_events))
        self.log.info("Updated webhook %s: %s for %s", updated.name, updated.uri, updated.subscribed_events)
        return updated

    def delete_webhook(self, name: str) -> None:
        """Delete a webhook; a missing one raises ``GeminiBatchNotFoundError``."""
        self.client.call(_endpoints.delete_webhook(name))
        self.log.info("Deleted webhook %s", name)

    def ping_webhook(self, name: str) -> None:
        """Ask the service to send a test event to the webhook's uri."""
        self.client.call(_endpoints.ping_webhook(name))

    def rotate_webhook_signing_secret(
        self, name: str, *, revoke_previous: RevokePrevious = "after_24h"
    ) -> RotatedSigningSecret:
        """Issue a new signing secret for a webhook, returned once, as at create (``secret``, a ``SecretStr``).

        **THE NEW SECRET IS SHOWN ONLY IN THIS REPLY.** Store it where the receiver reads it (the
        connection extra ``webhook_secret``; during a rotation, both secrets separated by a space).

        :param revoke_previous: ``after_24h`` keeps the previous secret valid for 24 hours (time to
            update the receiver), ``immediately`` revokes it now (a leaked secret).
        """
        rotated = self.client.call(_endpoints.rotate_webhook_signing_secret(name, revoke_previous=revoke_previous))
        self.log.info("Rotated the signing secret of webhook %s (previous one revoked %s)", name, revoke_previous)
        return rotated

    @staticmethod
    def webhook_config(uris: Sequence[str] | str | None, user_metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """Build a job's ``webhookConfig`` (``{"uris": [...], "user_metadata": {...}}``), checked; no I/O.

        Per-job ``uris`` are used instead of the project's registered webhooks for that job.

        :param uris: absolute http(s) URLs; a single string is one URL.
        :param user_metadata: a JSON-serialisable dict, echoed in each event of the job.
        :raises GeminiBatchInputError: naming the bad URL or metadata key and what to fix.
        """
        return _endpoints.webhook_config(uris, user_metadata)

    # -- async twins ------------------------------------------------------------------------------

    async def aget_webhook(self, name: str) -> Webhook:
        """Get a webhook."""
        return await (await self.aclient()).call(_endpoints.get_webhook(name))

    async def alist_webhooks(self, *, page_size: int | None = None) -> AsyncIterator[Webhook]:
        """Iterate over every webhook of the project, page after page."""
        client = await self.aclient()
        async for webhook in apages(lambda token: client.call(_endpoints.list_webhooks(page_size, token))):
            yield webhook
