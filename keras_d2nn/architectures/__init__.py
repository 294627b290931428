"""Builders for the D2NN paper's five architectures."""

from keras_d2nn.architectures.attention import attention
from keras_d2nn.architectures.cascade import cascade
from keras_d2nn.architectures.chain import chain
from keras_d2nn.architectures.hierarchical import hierarchical
from keras_d2nn.architectures.high_low import high_low

ARCHITECTURES = {
    "high_low": high_low,
    "cascade": cascade,
    "chain": chain,
    "hierarchical": hierarchical,
    "attention": attention,
}

__all__ = [
    "ARCHITECTURES",
    "attention",
    "cascade",
    "chain",
    "hierarchical",
    "high_low",
]
