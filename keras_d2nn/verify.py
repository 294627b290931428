"""Release 0.1's `keras_d2nn.verify`, now `keras_d2nn.export.verify`.

Kept so that release 0.1's scripts still run: importing this name gives
that module itself, with a DeprecationWarning (`release_0_1`).
"""

from keras_d2nn import release_0_1

release_0_1.alias(__name__, "keras_d2nn.export.verify")
