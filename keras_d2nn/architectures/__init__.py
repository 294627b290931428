"""Builders for the D2NN paper's five architectures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keras_d2nn.architectures.attention import attention
from keras_d2nn.architectures.cascade import cascade
from keras_d2nn.architectures.chain import chain
from keras_d2nn.architectures.hierarchical import hierarchical
from keras_d2nn.architectures.high_low import high_low

if TYPE_CHECKING:
    from keras_d2nn.models import D2NNModel

# Every builder takes `input_shape`, `num_classes` and `name` (keywords).
ARCHITECTURES: dict[str, Callable[..., D2NNModel]] = {
    "high_low": high_low,
    "cascade": cascade,
    "chain": chain,
    "hierarchical": hierarchical,
    "attention": attention,
}

# What the exit controllers read when they train by REINFORCE: the raw
# features (high-low) or logits (cascade). The builders' default,
# "confidence", is the input of the two-phase recipe, which wins
# (docs/estimators_and_schedules.md); REINFORCE was measured on these.
RAW_GATE_INPUTS: dict[str, str] = {"high_low": "features", "cascade": "logits"}

__all__ = [
    "ARCHITECTURES",
    "attention",
    "cascade",
    "chain",
    "hierarchical",
    "high_low",
]
