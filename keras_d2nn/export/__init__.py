"""Exporting a trained D2NN for serving, and running and checking exports.

- `export_saved_model`, `export_litert`, `export_onnx`: the serving
  function (routed execution inside) as a SavedModel, a LiteRT file or an
  ONNX file (`serving`, through `litert` and `onnx`);
- `load_exported`: any of the three, run from Python (`runtime`);
- the modules `verify` (`keras_d2nn.export.verify.verify`: agreement of an
  export with its Keras model) and `static_network` (the plain Keras
  network of one route, `keras_d2nn.static_network`): each holds a
  function of its name, so they are exported as modules.

Example:

```python
keras_d2nn.export.export_saved_model(model, "serving/high_low/1")
exported = keras_d2nn.export.load_exported("serving/high_low/1")
```
"""

from keras_d2nn.export import static_network
from keras_d2nn.export import verify
from keras_d2nn.export.runtime import ExportedModel
from keras_d2nn.export.runtime import load_exported
from keras_d2nn.export.serving import QUANTIZATIONS
from keras_d2nn.export.serving import export_litert
from keras_d2nn.export.serving import export_onnx
from keras_d2nn.export.serving import export_saved_model
from keras_d2nn.export.serving import serving_function
from keras_d2nn.models import exporters as _exporters

# `D2NNModel.export(path, format=...)`, the call Keras users make first,
# writes these routed exports (not Keras's generic ones).
_exporters.register("tf_saved_model", export_saved_model)
_exporters.register("litert", export_litert)
_exporters.register("onnx", export_onnx)

__all__ = [
    "QUANTIZATIONS",
    "ExportedModel",
    "export_litert",
    "export_onnx",
    "export_saved_model",
    "load_exported",
    "serving_function",
    "static_network",
    "verify",
]
