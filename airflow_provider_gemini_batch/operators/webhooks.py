"""Operators for set-up DAGs: register the webhook that announces finished jobs, and remove it.

The webhook's signing secret is issued once, in the create reply (``docs/protocol.md``, "Webhooks"):
``GeminiCreateWebhookOperator`` can keep it in an Airflow Variable, and never puts it in XCom or a log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchError, GeminiBatchInputError, GeminiBatchNotFoundError
from airflow_provider_gemini_batch.operators.batch import GeminiBatchBaseOperator
from airflow_provider_gemini_batch.settings import WEBHOOK_BATCH_EVENTS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class GeminiCreateWebhookOperator(GeminiBatchBaseOperator):
    """Register a project-level webhook and return its ``name``, ``uri`` and ``subscribed_events`` (never its secret).

    The service shows the webhook's signing secret **once**, in the reply to this create. With
    ``secret_variable`` it is stored in that Airflow Variable (registered with the secret masker
    first, so task logs show ``***``); copy it from there to the extra ``webhook_secret`` of the
    connection the receiver verifies with. Without ``secret_variable`` the secret is discarded (a
    warning says so): ``GeminiBatchHook.rotate_webhook_signing_secret`` issues a new one.

    Re-runnable with ``webhook_id``: a webhook of that id that exists already is reused, and its
    secret (issued by the run that created it) is left where that run stored it. When
    ``secret_variable`` holds nothing (a create whose reply was lost and was resent found the webhook
    made; or the Variable was deleted), the secret is rotated at once and the new one stored.

    :param uri: the absolute http(s) URL the service POSTs events to, e.g. the provider's receiver
        ``https://<airflow>/gemini-batch/webhooks/<conn id>`` (templated).
    :param subscribed_events: event types; by default every final state of a batch job (templated).
    :param display_name: a label for the webhook (templated).
    :param webhook_id: create it as ``webhooks/<webhook_id>``, which makes re-runs reuse it (templated).
    :param secret_variable: the Airflow Variable to store the new signing secret in; a name holding
        ``secret`` keeps it masked in the UI too (templated).
    """

    template_fields: Sequence[str] = (
        "uri",
        "subscribed_events",
        "display_name",
        "webhook_id",
        "secret_variable",
        "gemini_conn_id",
    )

    def __init__(
        self,
        *,
        uri: str,
        subscribed_events: Sequence[str] = WEBHOOK_BATCH_EVENTS,
        display_name: str | None = None,
        webhook_id: str | None = None,
        secret_variable: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        self.subscribed_events = list(subscribed_events) if isinstance(subscribed_events, tuple) else subscribed_events
        self.display_name = display_name
        self.webhook_id = webhook_id
        self.secret_variable = secret_variable

    def execute(self, context: Context) -> dict[str, Any]:
        webhook = self.hook.create_webhook(
            self.uri,
            subscribed_events=self.subscribed_events,
            display_name=self.display_name,
            webhook_id=self.webhook_id,
        )
        secret = webhook.new_signing_secret
        if secret is None and self.secret_variable and not self._stored(self.secret_variable):
            # The webhook exists but no secret of it was kept: an earlier create whose reply was lost (and
            # was resent), or a Variable deleted since. Its old secret is lost with it: replace it now.
            self.log.warning(
                "Webhook %s exists but Variable %s holds no secret of it: rotating its signing secret now "
                "(the previous one is revoked at once)",
                webhook.name,
                self.secret_variable,
            )
            secret = self.hook.rotate_webhook_signing_secret(webhook.name, revoke_previous="immediately").secret
            if secret is None:
                raise GeminiBatchError(f"Rotating the signing secret of {webhook.name} returned no secret.")
        if secret is None:
            self.log.info(
                "Reusing webhook %s: its signing secret was issued when it was first created%s; "
                "rotate_webhook_signing_secret issues a new one if it was lost",
                webhook.name,
                f" (and stored in Variable {self.secret_variable} then)" if self.secret_variable else "",
            )
        elif self.secret_variable:
            self._store(self.secret_variable, webhook.name, secret.get_secret_value())
        else:
            self.log.warning(
                "THE SIGNING SECRET OF WEBHOOK %s IS DISCARDED: the service shows it only once, and "
                "secret_variable was not set. Deliveries cannot be verified without it: issue a new one with "
                "GeminiBatchHook.rotate_webhook_signing_secret(%r), or delete the webhook and create it again "
                "with secret_variable.",
                webhook.name,
                webhook.name,
            )
        return webhook.summary()

    @staticmethod
    def _stored(variable: str) -> bool:
        from airflow.sdk import Variable

        return Variable.get(variable, default=None) is not None

    def _store(self, variable: str, webhook_name: str, secret: str) -> None:
        from airflow.providers.common.compat.sdk import mask_secret
        from airflow.sdk import Variable

        mask_secret(secret)  # Before anything could print it.
        Variable.set(
            variable,
            secret,
            description=f"Signing secret of Gemini webhook {webhook_name}: copy it to the connection extra "
            "'webhook_secret'.",
        )
        self.log.info(
            "Stored the signing secret of webhook %s in Variable %s: copy it to the extra 'webhook_secret' of "
            "the connection the receiver verifies deliveries with",
            webhook_name,
            variable,
        )


class GeminiDeleteWebhookOperator(GeminiBatchBaseOperator):
    """Delete a webhook; one that is already gone counts as deleted (the task succeeds and says so).

    :param webhook: ``webhooks/...``, or what ``GeminiCreateWebhookOperator`` returned (templated).
    """

    template_fields: Sequence[str] = ("webhook", "gemini_conn_id")

    def __init__(self, *, webhook: str | Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook

    def execute(self, context: Context) -> None:
        name = self.webhook.get("name") if isinstance(self.webhook, Mapping) else self.webhook
        if not isinstance(name, str):
            raise GeminiBatchInputError(
                f"{self.task_id}: webhook must be a 'webhooks/<id>' name or the create task's result, got {name!r}."
            )
        try:
            self.hook.delete_webhook(name)
        except GeminiBatchNotFoundError:
            self.log.info("Webhook %s does not exist (deleted already); nothing to delete", name)
