"""What a run cost: a price table per model and the arithmetic, always an estimate; no I/O.

Prices are USD per million tokens at the **interactive** (standard) rate, as Google's pricing page
lists them; Batch Mode bills half of it, every token kind alike (``batch_fraction``). The built-in
table holds Google's published prices as the provider's authors knew them on the date each entry
carries; it was not read from the page then (no machine that builds this provider reaches Google),
and it cannot follow Google's changes: check it against https://ai.google.dev/gemini-api/docs/pricing
and override it in the provider's configuration (``[gemini_batch] price_table``, merged over this
table field by field).

How a result's ``usageMetadata`` is billed (``tokens_by_kind``):

- ``prompt``: input tokens at the input price: ``promptTokenCount`` minus the cached ones, plus
  ``toolUsePromptTokenCount`` (the service counts cached tokens inside ``promptTokenCount``).
- ``cached``: ``cachedContentTokenCount``, at the cached-input price. Cache *storage* (per hour of
  TTL) is billed apart and is not in the estimate.
- ``output``: ``candidatesTokenCount``, at the output price.
- ``thinking``: ``thoughtsTokenCount``, billed as output.

Long-context tiers (Gemini 2.5 Pro prompts over 200k tokens cost more) and audio input prices
are not modelled: the table holds the text/image/video rate of prompts up to 200k tokens.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from airflow_provider_gemini_batch.exceptions import GeminiBatchConfigError

__all__ = [
    "BATCH_FRACTION",
    "BUILT_IN_PRICES",
    "PRICES_SOURCE",
    "TOKEN_KINDS",
    "ModelPrice",
    "cost_line",
    "estimate_cost",
    "format_cost",
    "price_table",
    "run_cost",
    "summed_cost",
    "tokens_by_kind",
]

#: Where the built-in prices were read.
PRICES_SOURCE = "https://ai.google.dev/gemini-api/docs/pricing"
#: Batch Mode's price as a share of the interactive one (docs/protocol.md "Limits").
BATCH_FRACTION = 0.5
#: The kinds of token a run is billed for, in the order the manifest lists them.
TOKEN_KINDS = ("prompt", "cached", "output", "thinking")
_MILLION = 1_000_000
_PRICE_FIELDS = ("input", "cached_input", "output", "thinking")
_SETTING = "[gemini_batch] price_table"


@dataclasses.dataclass(frozen=True)
class ModelPrice:
    """A model's interactive prices in USD per million tokens, and where and when they were read.

    :param input: prompt tokens (text, image, video).
    :param cached_input: prompt tokens read from a context cache.
    :param output: response tokens.
    :param thinking: thinking tokens; Google bills them as output.
    :param prices_as_of: the date the prices were read, ``YYYY-MM-DD``.
    :param source: the page (or contract) they come from.
    :param batch_fraction: the Batch Mode price as a share of these (0.5).
    """

    input: float
    cached_input: float
    output: float
    thinking: float
    prices_as_of: str
    source: str = PRICES_SOURCE
    batch_fraction: float = BATCH_FRACTION


def _listed(input: float, cached_input: float, output: float) -> ModelPrice:
    return ModelPrice(input, cached_input, output, output, "2025-10-01")


#: Gemini API prices (interactive, paid tier, prompts up to 200k tokens) as published at
#: ``PRICES_SOURCE``, as known on the date in each entry. AN ESTIMATE: check them against that page.
BUILT_IN_PRICES: dict[str, ModelPrice] = {
    "gemini-2.5-pro": _listed(1.25, 0.125, 10.00),
    "gemini-2.5-flash": _listed(0.30, 0.03, 2.50),
    "gemini-2.5-flash-lite": _listed(0.10, 0.01, 0.40),
    "gemini-2.0-flash": _listed(0.10, 0.025, 0.40),
    "gemini-embedding-001": _listed(0.15, 0.15, 0.0),
}


def tokens_by_kind(usage: Mapping[str, int]) -> dict[str, int]:
    """Split summed ``usageMetadata`` counters into the kinds billed apart: prompt, cached, output, thinking."""
    cached = usage.get("cachedContentTokenCount", 0)
    prompt = max(usage.get("promptTokenCount", 0) - cached, 0) + usage.get("toolUsePromptTokenCount", 0)
    return {
        "prompt": prompt,
        "cached": cached,
        "output": usage.get("candidatesTokenCount", 0),
        "thinking": usage.get("thoughtsTokenCount", 0),
    }


def estimate_cost(
    model: str | None, usage: Mapping[str, int], table: Mapping[str, ModelPrice] | None = None
) -> dict[str, Any] | None:
    """Estimate what ``usage`` cost on ``model``: at batch prices, at interactive ones, and the difference.

    :param model: ``gemini-2.5-flash`` or ``models/gemini-2.5-flash``.
    :param usage: ``usageMetadata`` counters summed over a run's results.
    :param table: prices by model id; by default the built-in table with the configured overrides.
    :return: ``{"currency": "USD", "batch", "interactive", "saved", "prices_as_of", "estimate": True}``,
        or ``None`` when the table has no price for the model.
    """
    if table is None:
        from airflow_provider_gemini_batch.settings import price_table_setting

        table = price_table(price_table_setting())
    price = table.get((model or "").removeprefix("models/"))
    if price is None:
        return None
    tokens = tokens_by_kind(usage)
    interactive = (
        tokens["prompt"] * price.input
        + tokens["cached"] * price.cached_input
        + tokens["output"] * price.output
        + tokens["thinking"] * price.thinking
    ) / _MILLION
    batch = interactive * price.batch_fraction
    return {
        "currency": "USD",
        "batch": round(batch, 9),
        "interactive": round(interactive, 9),
        "saved": round(interactive - batch, 9),
        "prices_as_of": price.prices_as_of,
        "estimate": True,
    }


def run_cost(model: str | None, usage: Mapping[str, int]) -> dict[str, Any]:
    """A manifest's ``tokens`` (by kind) and ``cost`` (``estimate_cost``, ``None`` without a price) for a run.

    A malformed ``[gemini_batch] price_table`` does not fail the run whose results are written: its
    cost is ``None`` and ``cost_error`` says what to fix.
    """
    try:
        return {"tokens": tokens_by_kind(usage), "cost": estimate_cost(model, usage)}
    except GeminiBatchConfigError as exc:
        return {"tokens": tokens_by_kind(usage), "cost": None, "cost_error": str(exc)}


def summed_cost(costs: list[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The cost of several runs (the shards of one input): ``None`` when any of them has none.

    Its ``prices_as_of`` is the oldest of theirs.
    """
    if not costs or any(cost is None for cost in costs):
        return None
    priced = [cost for cost in costs if cost is not None]
    total = {name: round(sum(cost[name] for cost in priced), 9) for name in ("batch", "interactive", "saved")}
    return {"currency": "USD", **total, "prices_as_of": min(cost["prices_as_of"] for cost in priced), "estimate": True}


def cost_line(
    run: str, model: str | None, usage: Mapping[str, int], cost: Mapping[str, Any] | None, why: str | None = None
) -> str:
    """The one log line a run gets: its tokens by kind and its estimated cost, or why there is none.

    :param why: why there is no cost, when it is not a missing price (``run_cost``'s ``cost_error``).
    """
    tokens = ", ".join(f"{kind} {count:,}" for kind, count in tokens_by_kind(usage).items())
    if cost is None:
        why = why or f"no price for {model} in the price table (add one in {_SETTING})"
        return f"Tokens of {run} on {model}: {tokens}. No cost estimate: {why}"
    return (
        f"Tokens of {run} on {model}: {tokens}. Estimated cost (prices as of {cost['prices_as_of']}, an estimate): "
        f"{format_cost(cost['batch'])} at batch prices, {format_cost(cost['interactive'])} interactively, "
        f"{format_cost(cost['saved'])} saved"
    )


def format_cost(dollars: float) -> str:
    """``$12.34``; amounts under a cent keep two significant digits, ``$0.0000095``."""
    if dollars >= 0.01 or dollars <= 0:
        return f"${dollars:,.2f}"
    digits = 1 - math.floor(math.log10(dollars))
    return f"${dollars:.{digits}f}"


def price_table(overrides: Mapping[str, Any] | str | None = None) -> dict[str, ModelPrice]:
    """The built-in table with ``overrides`` merged over it, field by field; new models may be added.

    :param overrides: ``{"model id": {"input": ..., "cached_input": ..., "output": ..., "thinking": ...,
        "prices_as_of": "YYYY-MM-DD", "source": "...", "batch_fraction": 0.5}}`` or that as a JSON string.
        A new model needs ``input``; ``cached_input`` defaults to it, ``thinking`` to ``output``.
    :raises GeminiBatchConfigError: naming the model and field to fix.
    """
    table = dict(BUILT_IN_PRICES)
    parsed = _parsed(overrides)
    for model, fields in parsed.items():
        where = f"{_SETTING}[{model!r}]"
        if not isinstance(fields, Mapping):
            raise GeminiBatchConfigError(f"{where} must be an object of prices, got {type(fields).__name__}.")
        known = {field.name for field in dataclasses.fields(ModelPrice)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise GeminiBatchConfigError(f"{where} has unknown field(s) {unknown}: use {sorted(known)}.")
        table[model.removeprefix("models/")] = _merged(table.get(model.removeprefix("models/")), fields, where)
    return table


def _parsed(overrides: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if overrides is None or (isinstance(overrides, str) and not overrides.strip()):
        return {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except ValueError as exc:
            raise GeminiBatchConfigError(f"{_SETTING} is not valid JSON ({exc}).") from exc
    if not isinstance(overrides, Mapping):
        raise GeminiBatchConfigError(
            f'{_SETTING} must be a JSON object such as {{"gemini-2.5-flash": {{"input": 0.3}}}}, '
            f"got a {type(overrides).__name__}."
        )
    return overrides


def _merged(base: ModelPrice | None, fields: Mapping[str, Any], where: str) -> ModelPrice:
    for name in (*_PRICE_FIELDS, "batch_fraction"):
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise GeminiBatchConfigError(
                f"{where}.{name} must be a number of USD per million tokens >= 0, got {value!r}."
            )
    if base is None:
        if fields.get("input") is None or fields.get("output") is None:
            raise GeminiBatchConfigError(
                f"{where} is a model the built-in table lacks: give at least input and output."
            )
        output = float(fields["output"])
        base = ModelPrice(
            float(fields["input"]),
            float(fields.get("cached_input", fields["input"])),
            output,
            float(fields.get("thinking", output)),
            str(fields.get("prices_as_of", "")),
            str(fields.get("source", "")),
        )
    changes = {name: value for name, value in fields.items() if value is not None}
    return dataclasses.replace(base, **changes)
