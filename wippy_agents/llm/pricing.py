"""Cost of a call from the ``llm.model`` entry's prices (USD per million tokens)."""

from __future__ import annotations

from wippy_agents.llm.config import ModelConfig
from wippy_agents.llm.types import Usage

__all__ = ["cost_usd", "priced_usage"]


def cost_usd(input_tokens: int, output_tokens: int, cfg: ModelConfig) -> float:
    """What ``input_tokens`` in and ``output_tokens`` out cost with ``cfg``'s prices (0.0 when unpriced)."""
    return (input_tokens * cfg.price_input_per_million + output_tokens * cfg.price_output_per_million) / 1_000_000


def priced_usage(input_tokens: int, output_tokens: int, cfg: ModelConfig) -> Usage:
    """A ``Usage`` whose ``cost_usd`` comes from ``cfg``."""
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                 cost_usd=cost_usd(input_tokens, output_tokens, cfg))
