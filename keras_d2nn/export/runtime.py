"""Running an exported D2NN (SavedModel, LiteRT or ONNX) from Python.

`load_exported(path)` recognises the format by the path (a directory with
`saved_model.pb`, a `.tflite` or an `.onnx` file) and returns an
`ExportedModel`: called on a batch of images it returns the serving dict
(`probabilities`, `decision_<controller>`, `executed_flops`, ...) as NumPy
arrays, whatever runtime is underneath. A model exported for a fixed batch
size refuses other batch sizes with a clear error; `run` feeds any number
of images in batches it can take.

Bad requests are refused here, before the runtime, with a ValueError: for
a float input (the export's declared input dtype), a dtype other than
float (integers such as raw 0..255 pixels are not scaled as in training);
for an integer input (token ids, say), floats or integers out of its
range; a wrong shape, no image. Images holding NaN or Inf: a SavedModel
refuses them (ValueError naming how many and their indices, as its graph
would); LiteRT and ONNX return them with `valid` False, NaN probabilities
and decisions -1 (docs/serving_bad_requests.md). Integer inputs cannot
hold NaN or Inf.
"""

import pathlib
import threading

import numpy as np

FORMAT_NAMES = {"saved_model": "SavedModel", "litert": "LiteRT", "onnx": "ONNX"}
FORMATS = tuple(FORMAT_NAMES)


def detect_format(path):
    """`"saved_model"`, `"litert"` or `"onnx"` for an exported path.

    Example: `detect_format("model.tflite")  # "litert"`.
    """
    path = pathlib.Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "saved_model"
    if path.is_file() and path.suffix == ".tflite":
        return "litert"
    if path.is_file() and path.suffix == ".onnx":
        return "onnx"
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {str(path)!r}.")
    raise ValueError(
        f"{str(path)!r} is not an exported model: expected a SavedModel "
        "directory (with saved_model.pb), a .tflite file or an .onnx file."
    )


class ExportedModel:
    """An exported D2NN behind one calling convention.

    Attributes:
        format: one of `FORMATS`.
        input_name: the name of the image input.
        input_shape: its shape without the batch dimension (None
            when the export does not say).
        batch_size: the fixed batch size, or None for any.
        quantized: whether the weights or activations are not float32
            (LiteRT float16/int8).
        input_dtype: the NumPy dtype of the input the export declares
            (float32, or e.g. int32 for a graph of token ids); inputs are
            converted to it.

    One object may be shared by any number of threads: SavedModel and
    ONNX runtimes are thread-safe, and a LiteRT model gets one
    interpreter per calling thread (its memory, once per thread).

    Example:

    ```python
    keras_d2nn.export.export_saved_model(model, "exported/1")
    exported = keras_d2nn.export.load_exported("exported/1")
    exported.format, exported.input_shape  # "saved_model", (28, 28, 1)
    outputs = exported.run(images)  # any number of images
    outputs["probabilities"].shape  # (64, 10)
    ```
    """

    def __init__(
        self,
        path,
        fmt,
        call,
        input_name,
        input_shape,
        batch_size,
        quantized=False,
        input_dtype=np.float32,
    ):
        self.path = str(path)
        self.format = fmt
        self.input_name = input_name
        self.input_shape = (
            None if input_shape is None else tuple(int(d) for d in input_shape)
        )
        self.batch_size = batch_size
        self.quantized = quantized
        self.input_dtype = np.dtype(input_dtype)
        self._call = call

    def _check_dtype(self, images):
        """Raises a ValueError unless `images` (an array) may be converted
        to the export's input dtype without changing what they mean."""
        name = FORMAT_NAMES[self.format]
        want = self.input_dtype
        if images.dtype.kind not in "fiub":
            raise ValueError(
                f"This {name} export takes numbers ({want} "
                f"{'images' if want.kind == 'f' else 'values'}); received "
                f"an array of dtype {images.dtype}."
            )
        if want.kind == "f":
            if images.dtype.kind != "f":
                raise ValueError(
                    f"This {name} export takes {want} images scaled as in "
                    f"training; received an array of dtype {images.dtype}. "
                    "It cannot know how integers (such as raw 0..255 "
                    "pixels) were scaled: convert them as the training "
                    "data was, e.g. images.astype('float32') / 255."
                )
            return
        # An integer or bool input (token ids, say): declared by the graph.
        declared = (
            f"This {name} export takes {want} values (its input "
            f"'{self.input_name}' is declared {want})"
        )
        if images.dtype.kind == "f":
            raise ValueError(
                f"{declared}; received an array of dtype {images.dtype}, "
                f"which converting would truncate. Pass {want} values."
            )
        if want.kind == "b":
            if images.dtype.kind != "b":
                raise ValueError(
                    f"{declared}; received an array of dtype "
                    f"{images.dtype}. Pass bool values."
                )
            return
        if images.size and not np.can_cast(images.dtype, want):
            info = np.iinfo(want)
            low, high = images.min(), images.max()
            if low < info.min or high > info.max:
                raise ValueError(
                    f"{declared}; received {images.dtype} values from "
                    f"{low} to {high}, outside {want}'s range "
                    f"[{info.min}, {info.max}]."
                )

    def _checked(self, images):
        """`images` as an array, after checks of dtype (against the
        export's input dtype), size, shape and (SavedModel only: it would
        refuse them) finiteness."""
        images = np.asarray(images)
        name = FORMAT_NAMES[self.format]
        self._check_dtype(images)
        if images.ndim == 0 or len(images) == 0:
            raise ValueError(f"This {name} export received no image.")
        if self.input_shape is not None and (
            images.ndim != len(self.input_shape) + 1
            or tuple(images.shape[1:]) != self.input_shape
        ):
            raise ValueError(
                f"This {name} export takes images of shape (batch,) + "
                f"{self.input_shape}; received an array of shape "
                f"{images.shape}."
            )
        if self.format == "saved_model" and images.dtype.kind == "f":
            # Integers and bools cannot be NaN or Inf.
            finite = np.isfinite(images.reshape(len(images), -1)).all(1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                named = ", ".join(str(i) for i in bad[:20])
                raise ValueError(
                    f"This {name} export refuses images holding NaN or "
                    f"Inf: {len(bad)} of {len(images)} do (at indices "
                    f"[{named}{', ...' if len(bad) > 20 else ''}]). "
                    "(LiteRT and ONNX exports return them with `valid` "
                    "False instead.)"
                )
        return images

    def __call__(self, images):
        images = self._checked(images)
        if self.batch_size is not None and len(images) != self.batch_size:
            raise ValueError(
                f"This {FORMAT_NAMES[self.format]} export was made for "
                f"batches of exactly {self.batch_size}; received a batch of "
                f"{len(images)}. Feed {self.batch_size} at a time "
                "(`ExportedModel.run` does), or export with any batch size "
                "(`batch_size=None`; CLI --export_batch_size=0)."
            )
        return self._call(images.astype(self.input_dtype))

    def run(self, images, batch_size=256):
        """Outputs for any number of images, fed in batches it takes.

        Example:

        ```python
        path = keras_d2nn.export.export_saved_model(model, "exported/1")
        exported = keras_d2nn.export.load_exported(path)
        outputs = exported.run(test_images, batch_size=32)  # 2 batches
        outputs["decision_gate"], outputs["executed_flops"]
        ```
        """
        images = self._checked(images)
        step = self.batch_size or batch_size
        if self.batch_size is not None and len(images) % step:
            raise ValueError(
                f"This model takes batches of exactly {step}: "
                f"{len(images)} images do not split into them."
            )
        return in_batches(self, images, step)


def in_batches(fn, images, batch_size):
    """`fn` (images -> `{name: array}`) over `images` in batches of
    `batch_size`, its outputs joined along the batch.

    Example: `in_batches(exported, x_test, 256)["probabilities"]`.
    """
    parts = [
        fn(images[i : i + batch_size])
        for i in range(0, len(images), batch_size)
    ]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _load_saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    ((name, spec),) = signature.structured_input_signature[1].items()
    shape = spec.shape
    if shape.rank is None and "serving_input_shape" in loaded.signatures:
        # The input is declared of unknown shape (the graph checks it, see
        # `export.serving_function`); a second signature gives the shape.
        shape = tf.TensorShape(
            [
                None if d < 0 else int(d)
                for d in loaded.signatures["serving_input_shape"]()[
                    "shape"
                ].numpy()
            ]
        )

    def call(images):
        try:
            outputs = signature(**{name: tf.constant(images)})
        except tf.errors.InvalidArgumentError as error:
            # The graph's own checks: keep the assertion's message only.
            message = str(error)
            if "assertion failed: [" in message:
                message = message.split("assertion failed: [", 1)[1].split(
                    "]\n", 1
                )[0]
            raise ValueError(
                f"The SavedModel refused the images: {message.strip()}"
            ) from None
        return {k: v.numpy() for k, v in outputs.items()}

    dtype = spec.dtype.as_numpy_dtype
    if shape.rank is None:  # an export of unknown shape, not by keras_d2nn
        return ExportedModel(
            path, "saved_model", call, name, None, None, input_dtype=dtype
        )
    return ExportedModel(
        path,
        "saved_model",
        call,
        name,
        shape[1:].as_list(),
        shape[0],
        input_dtype=dtype,
    )


def _load_litert(path, num_threads):
    from keras_d2nn.export import litert

    content = pathlib.Path(path).read_bytes()
    probe = litert.interpreter(content, xnnpack=False)
    ((name, detail),) = probe.get_signature_runner().get_input_details().items()
    signature_shape = list(detail["shape_signature"])
    batch = None if signature_shape[0] == -1 else int(signature_shape[0])
    quantized = any(
        t["dtype"] in (np.int8, np.float16) for t in probe.get_tensor_details()
    )
    # XNNPACK, LiteRT's default delegate, runs the routed model at any
    # batch size: no branch is handed a zero-size tensor (a batch of no
    # image is refused before it reaches the interpreter).
    # A LiteRT interpreter holds its tensors in place: two threads calling
    # one interpreter read each other's inputs and outputs (547 wrong
    # outputs in 400 calls from 8 threads, issue 29). Each thread gets its
    # own interpreter, made on its first call: calls run in parallel and
    # a thread pool pays the (milliseconds) set-up once per thread.
    per_thread = threading.local()

    def runner():
        if not hasattr(per_thread, "runner"):
            per_thread.runner = litert.interpreter(
                content, num_threads=num_threads
            ).get_signature_runner()
        return per_thread.runner

    runner()  # a model this runtime cannot run fails at load time

    def call(images):
        outputs = runner()(**{name: images})
        # Copies: the arrays may be views of the interpreter's buffers.
        return {k: np.array(v, copy=True) for k, v in outputs.items()}

    return ExportedModel(
        path,
        "litert",
        call,
        name,
        signature_shape[1:],
        batch,
        quantized,
        input_dtype=detail["dtype"],
    )


# onnxruntime's input types ("tensor(float)") -> NumPy dtypes.
_ONNX_DTYPES = {
    "float": np.float32,
    "float16": np.float16,
    "double": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
}


def _onnx_dtype(type_name):
    """The NumPy dtype of an onnxruntime input type such as
    `"tensor(int32)"`."""
    inner = (
        type_name[len("tensor(") : -1]
        if type_name.startswith("tensor(")
        else type_name
    )
    if inner not in _ONNX_DTYPES:
        raise ValueError(f"unsupported ONNX input type {type_name!r}")
    return _ONNX_DTYPES[inner]


def _load_onnx(path, num_threads):
    from keras_d2nn.export import onnx

    session = onnx.session(str(path), num_threads)
    (info,) = session.get_inputs()
    names = [o.name for o in session.get_outputs()]
    batch = info.shape[0] if isinstance(info.shape[0], int) else None

    def call(images):
        return dict(zip(names, session.run(names, {info.name: images})))

    return ExportedModel(
        path,
        "onnx",
        call,
        info.name,
        info.shape[1:],
        batch,
        input_dtype=_onnx_dtype(info.type),
    )


def load_exported(path, num_threads=1):
    """An `ExportedModel` for a SavedModel directory, .tflite or .onnx file.

    Example:

    ```python
    keras_d2nn.export.export_saved_model(model, "exported/1")
    exported = keras_d2nn.export.load_exported("exported/1")  # or a
    # .tflite (export_litert) or .onnx (export_onnx) file
    exported(images[:8])["decision_gate"]  # one batch, as exported
    ```
    """
    fmt = detect_format(path)
    if fmt != "saved_model" and pathlib.Path(path).stat().st_size == 0:
        raise ValueError(
            f"{str(path)!r} is empty (0 bytes): an export that was cut off. "
            "Export the model again."
        )
    loaders = {
        "saved_model": _load_saved_model,
        "litert": lambda p: _load_litert(p, num_threads),
        "onnx": lambda p: _load_onnx(p, num_threads),
    }
    try:
        return loaders[fmt](path)
    except Exception as error:  # each runtime raises its own types
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"{str(path)!r} is not a readable {FORMAT_NAMES[fmt]} export "
            "(truncated, corrupt or not an export of keras_d2nn): "
            f"{type(error).__name__}: {reason}"
        ) from None
