"""Builders for the D2NN paper's architectures."""

from keras_d2nn.architectures.high_low import high_low

ARCHITECTURES = {"high_low": high_low}

__all__ = ["ARCHITECTURES", "high_low"]
