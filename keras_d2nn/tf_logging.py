"""Quiets TensorFlow's C++ INFO and WARNING lines; imported first.

They (CUDA probing; "Skipping loop optimization" for every tf.cond that
routing adds) drown Keras's progress output. This only takes effect if
TensorFlow is not imported yet, and never overrides a level the user chose.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
