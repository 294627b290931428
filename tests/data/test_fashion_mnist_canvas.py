"""The cluttered-canvas data set: built offline from the IDX files,
deterministic, the item whole at its recorded position, clutter from
other items; bad settings and missing files get a clear error."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_d2nn.data import idx
from keras_d2nn.data.fashion_mnist import FILES
from keras_d2nn.data.fashion_mnist_canvas import CanvasConfig
from keras_d2nn.data.fashion_mnist_canvas import FashionMnistCanvas
from keras_d2nn.data.fashion_mnist_canvas import compose_canvas


def test_the_item_lies_whole_at_its_position_and_clutter_is_elsewhere():
    item = np.full((28, 28), 200, np.uint8)
    clutter = [np.full((28, 28), 90, np.uint8)] * 8
    canvas, (row, col) = compose_canvas(
        item, clutter, np.random.default_rng(3), 112
    )
    assert canvas.shape == (112, 112, 1) and canvas.dtype == np.uint8
    assert np.all(canvas[row : row + 28, col : col + 28, 0] == 200)
    outside = canvas[..., 0].copy()
    outside[row : row + 28, col : col + 28] = 0
    # Eight 10x10 patches, some maybe overlapping: ink outside the item.
    assert 100 <= np.count_nonzero(outside == 90) <= 800
    assert set(np.unique(outside)) <= {0, 90}


def test_positions_cover_the_canvas():
    rng = np.random.default_rng(0)
    item = np.ones((28, 28), np.uint8)
    rows, cols = zip(
        *(compose_canvas(item, [], rng, 112)[1] for _ in range(400))
    )
    assert min(rows) < 10 and max(rows) > 74  # top-left in [0, 84]
    assert min(cols) < 10 and max(cols) > 74


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"canvas_size": 20}, "should be >= 28"),
        ({"canvas_size": "112"}, "should be an int >= 28"),
        ({"canvas_size": 112.0}, "should be an int >= 28"),
        ({"clutter": -1}, "`clutter` should be an int >= 0"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        CanvasConfig(name="bad", **settings)


@pytest.fixture(scope="module")
def small_idx_dir(tmp_path_factory, fake_idx_dir):
    """The synthetic IDX files cut to 300 train and 100 test items: the
    builder's logic, prepared in seconds."""
    import gzip

    directory = tmp_path_factory.mktemp("small_idx")
    for split, stems in FILES.items():
        n = {"train": 300, "test": 100}[split]
        for stem in stems:
            array = idx.read_idx(idx.find_idx(fake_idx_dir, stem))[:n]
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
                int(d).to_bytes(4, "big") for d in array.shape
            )
            with gzip.open(directory / f"{stem}.gz", "wb") as file:
                file.write(header + array.astype(np.uint8).tobytes())
    return str(directory)


def prepare(data_dir, manual_dir, config="canvas112"):
    builder = FashionMnistCanvas(data_dir=str(data_dir), config=config)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return builder


def test_the_builder_prepares_offline_and_deterministically(
    tmp_path, small_idx_dir
):
    first = prepare(tmp_path / "a", small_idx_dir)
    assert first.info.splits["train"].num_examples == 300
    assert first.info.splits["test"].num_examples == 100
    examples = list(tfds.as_numpy(first.as_dataset(split="test")))
    again = list(
        tfds.as_numpy(
            prepare(tmp_path / "b", small_idx_dir).as_dataset(split="test")
        )
    )
    items = idx.read_idx(idx.find_idx(small_idx_dir, FILES["test"][0]))
    labels = idx.read_idx(idx.find_idx(small_idx_dir, FILES["test"][1]))
    # as_dataset may shuffle files: match examples by content.
    assert sorted(e["image"].tobytes() for e in examples) == sorted(
        e["image"].tobytes() for e in again
    )
    seen = set()
    for example in examples:
        image, (row, col) = example["image"], example["position"]
        assert image.shape == (112, 112, 1)
        window = image[row : row + 28, col : col + 28, 0]
        # The item is there whole (clutter only adds ink on top of it).
        matches = np.flatnonzero(
            np.all(window >= items, axis=(1, 2)) & (labels == example["label"])
        )
        assert len(matches) >= 1
        seen.add(int(matches[0]))
        assert np.count_nonzero(image) > np.count_nonzero(items[matches[0]])
    assert len(seen) > 90  # nearly every item, each once


def test_missing_files_get_a_clear_error(tmp_path):
    with pytest.raises(AssertionError, match="Put the four Fashion-MNIST IDX"):
        prepare(tmp_path / "data", str(tmp_path / "nowhere"))
    some = tmp_path / "some"
    some.mkdir()
    (some / "unrelated.txt").write_text("not the IDX files")
    with pytest.raises(
        FileNotFoundError, match="IDX files for '(train|test)' not found"
    ):
        prepare(tmp_path / "data", str(some))


def test_clutter_never_comes_from_the_item_itself_and_stays_in_range():
    from keras_d2nn.data.fashion_mnist_canvas import clutter_sources

    rng = np.random.default_rng(0)
    for count in (2, 3, 10):
        for item in range(count):
            drawn = clutter_sources(rng, count, item, 50)
            assert item not in drawn
            assert set(drawn) == set(range(count)) - {item}


def test_the_pipeline_loads_canvases_with_their_positions_in_order(
    tmp_path, small_idx_dir
):
    from keras_d2nn.data import pipelines

    where = dict(data_dir=str(tmp_path), manual_dir=small_idx_dir)
    x, y = pipelines.load_arrays("fashion_mnist_canvas", "test", **where)
    positions = pipelines.load_positions(
        "fashion_mnist_canvas", "test", **where
    )
    assert x.shape == (100, 112, 112, 1) and x.dtype == np.float32
    items = idx.read_idx(idx.find_idx(small_idx_dir, FILES["test"][0]))
    labels = idx.read_idx(idx.find_idx(small_idx_dir, FILES["test"][1]))
    # Each position is where that canvas's own item lies, whole.
    for image, label, (row, col) in zip(x, y, positions):
        window = np.round(255 * image[row : row + 28, col : col + 28, 0])
        assert np.any(np.all(window >= items, axis=(1, 2)) & (labels == label))
    assert pipelines.dataset_for_shape((112, 112, 1)) == "fashion_mnist_canvas"


def test_positions_and_shapes_of_other_datasets_are_refused():
    from keras_d2nn.data import pipelines

    with pytest.raises(ValueError, match="fashion_mnist has no positions"):
        pipelines.load_positions("fashion_mnist")
    with pytest.raises(ValueError, match=r"No dataset has images of shape"):
        pipelines.dataset_for_shape((8, 8, 1))
