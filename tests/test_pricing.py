"""What a run cost: token kinds and the arithmetic, against examples computed by hand (``pricing.py``)."""

from __future__ import annotations

import pytest

from airflow_provider_gemini_batch.exceptions import GeminiBatchConfigError
from airflow_provider_gemini_batch.pricing import (
    BUILT_IN_PRICES,
    ModelPrice,
    cost_line,
    estimate_cost,
    price_table,
    tokens_by_kind,
)

# One price per kind, chosen so that each kind's share is easy to check by hand.
PRICES = {
    "test-model": ModelPrice(
        input=1.00, cached_input=0.10, output=4.00, thinking=8.00, prices_as_of="2026-01-02", source="https://x.test"
    )
}


def test_tokens_by_kind_take_cached_tokens_out_of_the_prompt_and_tool_use_into_it() -> None:
    usage = {
        "promptTokenCount": 1000,
        "cachedContentTokenCount": 400,
        "toolUsePromptTokenCount": 50,
        "candidatesTokenCount": 300,
        "thoughtsTokenCount": 200,
        "totalTokenCount": 1550,
    }
    assert tokens_by_kind(usage) == {"prompt": 650, "cached": 400, "output": 300, "thinking": 200}


@pytest.mark.parametrize(
    ("usage", "interactive"),
    [
        # 2,000,000 prompt tokens at $1.00 per million: $2.00.
        ({"promptTokenCount": 2_000_000}, 2.00),
        # Of 3,000,000 prompt tokens 2,000,000 are cached: 1,000,000 x $1.00 + 2,000,000 x $0.10 = $1.20.
        ({"promptTokenCount": 3_000_000, "cachedContentTokenCount": 2_000_000}, 1.20),
        # 500,000 output tokens at $4.00 per million: $2.00.
        ({"candidatesTokenCount": 500_000}, 2.00),
        # 250,000 thinking tokens at $8.00 per million: $2.00.
        ({"thoughtsTokenCount": 250_000}, 2.00),
        # All four: 1,000,000 x 1.00 + 2,000,000 x 0.10 + 500,000 x 4.00 + 250,000 x 8.00 = 1 + 0.2 + 2 + 2 = $5.20.
        (
            {
                "promptTokenCount": 3_000_000,
                "cachedContentTokenCount": 2_000_000,
                "candidatesTokenCount": 500_000,
                "thoughtsTokenCount": 250_000,
            },
            5.20,
        ),
    ],
)
def test_each_token_kind_costs_its_price_and_batch_is_half_the_interactive_price(
    usage: dict[str, int], interactive: float
) -> None:
    cost = estimate_cost("test-model", usage, PRICES)
    assert cost == {
        "currency": "USD",
        "interactive": pytest.approx(interactive),
        "batch": pytest.approx(interactive / 2),
        "saved": pytest.approx(interactive / 2),
        "prices_as_of": "2026-01-02",
        "estimate": True,
    }


def test_the_built_in_flash_price_by_hand() -> None:
    # gemini-2.5-flash: $0.30 input, $0.03 cached, $2.50 output and thinking, per million tokens.
    # 600,000 x 0.30 + 400,000 x 0.03 + 200,000 x 2.50 + 100,000 x 2.50 = 0.18 + 0.012 + 0.50 + 0.25 = $0.942.
    usage = {
        "promptTokenCount": 1_000_000,
        "cachedContentTokenCount": 400_000,
        "candidatesTokenCount": 200_000,
        "thoughtsTokenCount": 100_000,
    }
    cost = estimate_cost("models/gemini-2.5-flash", usage)
    assert cost is not None
    assert cost["interactive"] == pytest.approx(0.942)
    assert cost["batch"] == pytest.approx(0.471)
    assert cost["saved"] == pytest.approx(0.471)
    assert cost["prices_as_of"] == BUILT_IN_PRICES["gemini-2.5-flash"].prices_as_of


def test_a_model_without_a_price_has_no_cost() -> None:
    assert estimate_cost("gemini-9-unknown", {"promptTokenCount": 10}) is None


def test_the_built_in_table_prices_the_documented_models_with_a_date_and_a_source() -> None:
    for model in (
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-pro",
        "gemini-2.0-flash",
        "gemini-embedding-001",
    ):
        price = BUILT_IN_PRICES[model]
        assert price.input > 0
        assert price.source.startswith("https://ai.google.dev/")
        assert len(price.prices_as_of) == 10


def test_overrides_merge_over_the_built_in_table_field_by_field_and_add_models() -> None:
    table = price_table(
        {
            "gemini-2.5-flash": {"input": 0.5, "prices_as_of": "2027-01-01"},
            "my-tuned-model": {"input": 1, "output": 2, "prices_as_of": "2027-01-01", "source": "our contract"},
        }
    )
    assert table["gemini-2.5-flash"].input == 0.5
    assert table["gemini-2.5-flash"].output == BUILT_IN_PRICES["gemini-2.5-flash"].output
    assert table["gemini-2.5-flash"].prices_as_of == "2027-01-01"
    assert table["my-tuned-model"].cached_input == 1  # No cache price given: cached input costs the input price.
    assert table["my-tuned-model"].thinking == 2  # Thinking is billed as output.
    assert table["gemini-2.0-flash"] == BUILT_IN_PRICES["gemini-2.0-flash"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ('{"gemini-2.5-flash": {"inptu": 1}}', "inptu"),
        ('{"gemini-2.5-flash": {"input": -1}}', "input"),
        ('{"new-model": {"output": 1}}', "input"),
        ("not json", "JSON"),
        ('["a list"]', "object"),
    ],
)
def test_a_bad_override_says_what_to_fix(overrides: str, message: str) -> None:
    with pytest.raises(GeminiBatchConfigError, match=message) as error:
        price_table(overrides)
    assert "price_table" in str(error.value)


def test_the_log_line_says_it_is_an_estimate_and_gives_both_prices_and_the_date() -> None:
    cost = estimate_cost("test-model", {"promptTokenCount": 2_000_000}, PRICES)
    line = cost_line("batches/abc", "test-model", {"promptTokenCount": 2_000_000}, cost)
    assert "estimate" in line
    assert "$1.00 at batch prices" in line
    assert "$2.00 interactively" in line
    assert "2026-01-02" in line
    assert "no price" in cost_line("batches/abc", "other", {}, None)
