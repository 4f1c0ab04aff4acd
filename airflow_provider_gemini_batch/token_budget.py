"""Estimating a job's input tokens before anything is uploaded, from a sample counted by the service.

The budget guard (``max_input_tokens=`` on the submit operator) reads the input once, keeping a
uniform random sample of ``sample_size`` requests (reservoir sampling: memory does not grow with the
input) and the total bytes of every request. The service counts the sample's tokens
(``countTokens``, free); the estimate is the sample's tokens per byte times the input's bytes, plus,
for requests that use a context cache, the cache's tokens once per request.

Error margin: with no more requests than the sample, every request is counted and the estimate is
exact (up to the service's own count). Beyond that the error is that of a ratio estimate: small
(a few percent) when requests are alike, as batch inputs built from one template are; it grows with
how much the tokens-per-byte of requests differ (mixed languages or scripts, images referenced by
URI, which weigh few bytes and many tokens). ``docs/caching-and-cost.md`` shows the numbers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InputSample", "TokenEstimate", "budget_problem"]


@dataclass
class InputSample:
    """A uniform sample of at most ``size`` requests of an input read once, and the bytes of all of them.

    :param size: requests to keep.
    :param seed: the sampler's seed, so one input always gives the same sample.
    """

    size: int
    seed: int = 0
    requests: list[tuple[Mapping[str, Any], int]] = field(default_factory=list)
    request_count: int = 0
    byte_count: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, request: Mapping[str, Any], byte_count: int) -> None:
        """Take one request of the input, ``byte_count`` bytes long."""
        self.request_count += 1
        self.byte_count += byte_count
        if len(self.requests) < self.size:
            self.requests.append((request, byte_count))
            return
        slot = self._random.randrange(self.request_count)
        if slot < self.size:
            self.requests[slot] = (request, byte_count)

    def estimate(self, sample_tokens: int, tokens_per_request: int = 0) -> TokenEstimate:
        """Extrapolate the sample's counted tokens to the input by bytes.

        :param sample_tokens: what the service counted for the sampled requests (no cache included).
        :param tokens_per_request: tokens each request adds on top (a context cache it reads).
        """
        sample_bytes = sum(byte_count for _request, byte_count in self.requests)
        exact = len(self.requests) == self.request_count
        scaled = sample_tokens if exact or not sample_bytes else round(sample_tokens * self.byte_count / sample_bytes)
        total = scaled + tokens_per_request * self.request_count
        return TokenEstimate(total, self.request_count, len(self.requests), exact)


@dataclass(frozen=True)
class TokenEstimate:
    """An input's estimated tokens: ``tokens`` over ``request_count`` requests, ``sampled`` of them counted."""

    tokens: int
    request_count: int
    sampled: int
    exact: bool


def budget_problem(estimate: TokenEstimate, max_input_tokens: int, source: str) -> str | None:
    """Why an input over budget is refused, or ``None`` when it is within ``max_input_tokens``."""
    if estimate.tokens <= max_input_tokens:
        return None
    how = (
        "counted exactly"
        if estimate.exact
        else f"estimated from {estimate.sampled} of its {estimate.request_count:,} requests counted by the service"
    )
    return (
        f"{source} holds about {estimate.tokens:,} input tokens ({how}), over max_input_tokens="
        f"{max_input_tokens:,}. Nothing was uploaded or submitted. Split the input (GeminiSplitInputOperator "
        "with max_tokens), trim the requests, or raise max_input_tokens."
    )
