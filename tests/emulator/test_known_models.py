"""Models: a create names a model the service knows, of the kind the endpoint needs (docs/protocol.md "Models")."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_gemini_batch.emulator import EmulatorControl

from ._support import EMBEDDING_MODEL, MODEL, create, inline_config

EMBED_ITEMS = {"requests": {"requests": [{"request": {"content": {"parts": [{"text": "a"}]}}}]}}


def create_on(api: httpx.Client, version: str, model: str, method: str) -> httpx.Response:
    """Send a small, valid create for ``method`` on ``model``; return the raw reply."""
    input_config = EMBED_ITEMS if method == "asyncBatchEmbedContent" else inline_config("x")
    return api.post(f"/{version}/{model}:{method}", json={"batch": {"inputConfig": input_config}})


def not_found_body(model: str, version: str, method: str) -> dict[str, object]:
    """The service's reply to a model it does not have, or that does not serve ``method``."""
    message = (
        f"{model} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods."
    )
    return {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}


@pytest.mark.parametrize("method", ["batchGenerateContent", "asyncBatchEmbedContent"])
def test_an_unknown_model_is_not_found_and_creates_nothing(
    api: httpx.Client, control: EmulatorControl, version: str, method: str
) -> None:
    response = create_on(api, version, "models/gemini-2.5-flsh", method)

    assert response.status_code == 404
    assert response.json() == not_found_body("models/gemini-2.5-flsh", version, method)
    assert control.created_count() == 0


@pytest.mark.parametrize(
    ("model", "method"),
    [(f"models/{EMBEDDING_MODEL}", "batchGenerateContent"), (f"models/{MODEL}", "asyncBatchEmbedContent")],
)
def test_a_model_of_the_other_kind_is_refused_like_an_unknown_one(
    api: httpx.Client, control: EmulatorControl, model: str, method: str
) -> None:
    # The Developer API answers "not found, or not supported for <method>" with one 404 for both.
    response = create_on(api, "v1beta", model, method)

    assert response.status_code == 404
    assert response.json() == not_found_body(model, "v1beta", method)
    assert control.created_count() == 0


@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("models/gemini-2.5-pro", "batchGenerateContent"),
        ("models/gemini-2.5-flash-lite", "batchGenerateContent"),
        ("models/gemini-3-pro-preview", "batchGenerateContent"),
        ("models/gemini-3-flash-preview", "batchGenerateContent"),
        ("models/gemini-2.5-flash-image", "batchGenerateContent"),
        ("models/gemini-3-pro-image-preview", "batchGenerateContent"),
        ("models/gemini-embedding-001", "asyncBatchEmbedContent"),
        ("models/gemini-embedding-2", "asyncBatchEmbedContent"),
    ],
)
def test_current_models_are_known_by_default(api: httpx.Client, model: str, method: str) -> None:
    response = create_on(api, "v1beta", model, method)

    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["model"] == model


def test_the_known_models_are_a_setting_that_reset_restores(api: httpx.Client, control: EmulatorControl) -> None:
    merged = control.configure(generation_models=["my-model", "tunedModels/my-tuned"], embedding_models=["my-embedder"])
    on_mine = create_on(api, "v1beta", "models/my-model", "batchGenerateContent")
    on_tuned = create_on(api, "v1", "tunedModels/my-tuned", "batchGenerateContent")
    on_my_embedder = create_on(api, "v1beta", "models/my-embedder", "asyncBatchEmbedContent")
    on_a_default = create_on(api, "v1beta", f"models/{MODEL}", "batchGenerateContent")
    control.reset()
    after_reset = create_on(api, "v1beta", "models/my-model", "batchGenerateContent")

    assert merged["generation_models"] == ["models/my-model", "tunedModels/my-tuned"]
    assert merged["embedding_models"] == ["models/my-embedder"]
    assert [on_mine.status_code, on_tuned.status_code, on_my_embedder.status_code] == [200, 200, 200]
    assert on_a_default.status_code == 404  # the setting replaces the list
    assert after_reset.status_code == 404
    assert f"models/{MODEL}" in control.config()["generation_models"]


@pytest.mark.parametrize(
    "bad",
    [
        {"generation_models": "gemini-2.5-flash"},
        {"generation_models": ["gemini 2.5"]},
        {"embedding_models": [""]},
        {"embedding_models": [7]},
        {"embedding_models": ["files/abc"]},
        {"generation_models": ["shared"], "embedding_models": ["models/shared"]},
    ],
)
def test_bad_model_lists_are_refused(control: EmulatorControl, bad: dict[str, object]) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        control.configure(**bad)

    message = refused.value.response.json()["error"]["message"]
    assert refused.value.response.status_code == 400
    assert message.startswith(tuple(bad)), message  # names the setting it refuses


def test_a_job_keeps_working_after_its_model_is_removed(api: httpx.Client, control: EmulatorControl) -> None:
    control.configure(pending_seconds=0.2)
    name = create(api, "v1beta", inline_config("still answered"))["name"]
    control.configure(generation_models=["another-model"])

    reply = api.get(f"/v1beta/{name}")

    assert reply.status_code == 200
    assert reply.json()["metadata"]["model"] == f"models/{MODEL}"
