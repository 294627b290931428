"""The five paper architectures: structure, brief real training, reach,
and exports that agree with Keras."""

import keras
import numpy as np
import onnx
import pytest

from keras_d2nn import architectures
from keras_d2nn.execution import indexed_crop
from keras_d2nn.export import onnx as export_onnx
from keras_d2nn.testing import EXPORT_FORMATS
from keras_d2nn.testing import TestCase
from keras_d2nn.testing import assert_exports_agree
from keras_d2nn.testing import run_export_test
from keras_d2nn.testing import shape_images

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
NAMES = sorted(architectures.ARCHITECTURES)


def controlled_nodes(plan, controller, action):
    return [
        n.name for n in plan.order if action in n.control.get(controller, ())
    ]


def routes_of(model, images):
    """Each image's route: its decisions, one column per controller."""
    trace = model.trace(images)
    return np.stack(
        [np.asarray(trace.decisions[q]) for q in model.plan.controllers],
        axis=-1,
    )


def covering_images(model, n, pool=200):
    """`n` of `pool` synthetic images, taking turns among the routes the
    model sends the pool down (the rarest first): every route of the pool
    is taken, if `n` allows."""
    images = shape_images(pool)
    _, route = np.unique(routes_of(model, images), axis=0, return_inverse=True)
    turn = [np.sum(route[:i] == route[i]) for i in range(pool)]
    return images[np.argsort(turn, kind="stable")][:n]


@pytest.mark.parametrize("name", NAMES)
def test_trains_briefly_on_real_images(name, fashion_mnist):
    x_train, y_train, x_test, y_test = fashion_mnist
    keras.utils.set_random_seed(0)
    model = architectures.ARCHITECTURES[name]()
    model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.05)
    history = model.fit(
        x_train[:2048], y_train[:2048], epochs=1, batch_size=64, verbose=0
    )
    assert np.isfinite(history.history["loss"][-1])
    results = model.evaluate(
        x_test[:1000], y_test[:1000], verbose=0, return_dict=True
    )
    assert results["accuracy"] > 0.3, results  # chance is 0.1


@pytest.mark.parametrize("name", NAMES)
def test_every_branch_is_reachable(name):
    keras.utils.set_random_seed(0)
    model = architectures.ARCHITECTURES[name]()
    plan = model.plan
    images = shape_images(64)
    for controller in plan.controllers:
        for index, action in enumerate(plan.nodes[controller].actions):
            # Route every example that reaches the controller to `action`
            # (the other controllers to their first action).
            routing = {q: 0 for q in plan.controllers}
            routing[controller] = index
            # Nested controllers run only if their parents chose to go on.
            for q in plan.controllers[: plan.controllers.index(controller)]:
                routing[q] = _action_reaching(plan, q, controller)
            model.set_routing(routing)
            routes = model.route(images)
            assert np.all(routes["decisions"][controller] == index)
            for node in controlled_nodes(plan, controller, index):
                assert routes["executed"][node].all(), (
                    controller,
                    action,
                    node,
                )
    model.set_routing(None)


def _action_reaching(plan, parent, controller):
    """The action of `parent` under which `controller` can run."""
    space, conditions = plan.space, plan.conditions
    for index in range(len(plan.nodes[parent].actions)):
        if (conditions[controller] & space.chooses(parent, index)).any():
            return index
    raise AssertionError(f"{controller} unreachable from {parent}")


@pytest.mark.parametrize("name", NAMES)
def test_exports_agree_with_keras(name, tmp_path):
    keras.utils.set_random_seed(0)
    # Exit controllers reading their raw input: untrained, the default
    # confidence gates send every image the same way.
    raw = architectures.RAW_GATE_INPUTS.get(name)
    model = architectures.ARCHITECTURES[name](
        **({"gate_input": raw} if raw else {})
    )
    images = covering_images(model, 16)
    # The untrained controllers route them more than one way.
    assert len(np.unique(routes_of(model, images), axis=0)) > 1
    # Every format, LiteRT at batch 1 (tf.cond) and batched (gather and
    # scatter): 8-35 s per architecture on a busy 2-core machine.
    runs = run_export_test(model, EXPORT_FORMATS, images, directory=tmp_path)
    onnx_ops = export_onnx.operator_types(onnx.load(runs["onnx"].path))
    if indexed_crop.branch_nodes(model.plan):
        assert "If" in onnx_ops, "routing must stay conditional"
    else:  # attention: its crops are one gather (test_glimpse_crop_exports)
        assert "Gather" in onnx_ops
    # A batch of one through the batched routing: every branch but one
    # is empty.
    assert_exports_agree(
        model,
        {
            f: runs[f].exported
            for f in ("saved_model", "litert_batched", "onnx")
        },
        images[:1],
    )


VARIANTS = {
    "cascade_4_stages": lambda: architectures.cascade(
        stages=[
            keras.Sequential(
                [
                    keras.layers.Conv2D(
                        width, 3, padding="same", activation="relu"
                    )
                ]
            )
            for width in (4, 8, 8, 16)
        ],
        gate_input="logits",
    ),
    "chain_1_stage": lambda: architectures.chain(num_stages=1),
    "hierarchical_2_groups": lambda: architectures.hierarchical(
        groups={"low": range(5), "high": range(5, 10)}
    ),
    "attention_2_regions": lambda: architectures.attention(
        regions=[(0, 0), (8, 8)], glimpse_size=16
    ),
    "high_low_rgb_32": lambda: architectures.high_low(
        input_shape=(32, 32, 3), num_classes=4, gate_input="features"
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exports_of_builder_variants_agree_with_keras(variant):
    run_export_test(VARIANTS[variant](), EXPORT_FORMATS)


class ArchitectureTest(TestCase):
    def test_each_round_trips_through_keras_files(self):
        images = np.random.default_rng(0).random((8, 28, 28, 1), "float32")
        for name in NAMES:
            model = architectures.ARCHITECTURES[name]()
            self.run_model_saving_test(model, images)

    def test_cascade_stages_grow_in_cost_and_declare_exits(self):
        model = architectures.cascade(gate_input="logits")
        flops = model.plan.flops
        assert flops["stage1"] < flops["stage2"] < flops["stage3"]
        assert model.plan.controllers == ("exit1", "exit2")
        assert [e.head for e in model.plan.exits] == [
            "head1",
            "head2",
        ]
        # exit2 runs only where exit1 chose to continue.
        assert model.plan.nodes["stage2"].control == {"exit1": (1,)}

    def test_chain_versions_and_skip(self):
        model = architectures.chain(num_stages=2)
        plan = model.plan
        assert plan.nodes["choose1"].actions == (
            "full",
            "half",
            "quarter",
            "skip",
        )
        assert (
            plan.flops["block1_full"]
            > plan.flops["block1_half"]
            > plan.flops["block1_quarter"]
            > 0
        )
        images = np.random.default_rng(0).random((4, 28, 28, 1), "float32")
        model.set_routing({"choose1": "skip", "choose2": "skip"})
        trace = model.trace(images)
        # Skipping every stage leaves the stem's features unchanged.
        self.assertAllClose(trace.values["stage2"], trace.values["stem"])

    def test_hierarchical_routes_by_coarse_group_from_the_start(self):
        # Generalist experts: the controller starts on the coarse argmax.
        model = architectures.hierarchical(specialists=False)
        groups = model.graph.metadata["groups"]
        assert sorted(sum(groups.values(), [])) == list(range(10))
        images = np.random.default_rng(1).random((32, 28, 28, 1), "float32")
        trace = model.trace(images)
        coarse = trace.values["coarse"].numpy()
        np.testing.assert_array_equal(
            trace.decisions["route"], coarse.argmax(axis=-1)
        )
        supervision = model.plan.supervised[0]
        assert supervision.node == "coarse"
        assert supervision.label_map == (0, 2, 0, 2, 0, 1, 0, 1, 2, 1)

    def test_hierarchical_pairs_run_two_experts_and_add_their_logits(self):
        model = architectures.hierarchical()
        actions = model.plan.nodes["route"].actions
        assert actions == (
            "tops", "shoes", "others",
            "tops+shoes", "tops+others", "shoes+others", "all",
        )  # fmt: skip
        images = np.random.default_rng(1).random((4, 28, 28, 1), "float32")

        def run(action):
            decisions = {"route": np.full(4, actions.index(action), "int32")}
            return model.trace(images, decisions=decisions)

        pair = run("tops+others")
        assert bool(pair.executed["fine_tops"].numpy().all())
        assert bool(pair.executed["fine_others"].numpy().all())
        assert not pair.executed["fine_shoes"].numpy().any()
        self.assertAllClose(
            pair.outputs["logits"],
            run("tops").outputs["logits"] + run("others").outputs["logits"],
        )
        flops = model.plan.route_flops
        # Two experts cost two, and all three is the dearest route.
        assert flops[actions.index("all")] == model.full_flops
        assert flops[actions.index("tops+shoes")] - flops[0] == (
            pytest.approx(model.plan.flops["fine_shoes"])
        )
        one = architectures.hierarchical(max_experts=1)
        assert one.plan.nodes["route"].actions == ("tops", "shoes", "others")

    def test_attention_reads_the_chosen_crop_with_one_glimpse(self):
        model = architectures.attention()
        nodes = model.plan.nodes
        spec = model.plan.specs["crop_centre"]
        assert tuple(spec.shape) == (None, 20, 20, 1)
        # The crops are conditional copies; their merge, read by the one
        # glimpse network, reaches every example.
        images = np.random.default_rng(2).random((16, 28, 28, 1), "float32")
        trace = model.trace(images)
        chosen = np.asarray(trace.decisions["look"])
        for index, region in enumerate(nodes["look"].actions):
            np.testing.assert_array_equal(
                trace.executed[f"crop_{region}"], chosen == index
            )
            assert model.plan.flops[f"crop_{region}"] == 0
        assert np.all(trace.executed["glimpse"])
        assert nodes["glimpse"].inputs == ("crop",)
        np.testing.assert_allclose(trace.executed_flops, model.plan.full_flops)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: architectures.cascade(
                stages=[keras.layers.Identity()], gate_input="logits"
            ),
            "at least 2 stages",
        ),
        (lambda: architectures.chain(widths=(8,)), "same length"),
        (
            lambda: architectures.chain(num_stages=0),
            "`num_stages` should be >= 1",
        ),
        (
            lambda: architectures.attention(regions=[(0, 0), (10, 10)]),
            r"Region \(10, 10\) of size 20 does not fit",
        ),
        (
            lambda: architectures.hierarchical(groups={"a": (0, 1), "b": (2,)}),
            "leave classes",
        ),
        (
            lambda: architectures.hierarchical(max_experts=4),
            r"`max_experts` should be an int from 1 to the number of groups",
        ),
    ],
)
def test_builder_arguments_are_checked(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "canvas, glimpse", [(112, 48), (112, 40), (224, 64), (60, 29)]
)
def test_covering_regions_hold_an_item_wherever_it_lies(canvas, glimpse):
    from keras_d2nn.architectures.attention import covering_regions

    regions = covering_regions(canvas, glimpse)
    starts = sorted({top for top, _ in regions})
    assert regions == tuple((t, s) for t in starts for s in starts)
    assert all(0 <= s <= canvas - glimpse for s in starts)
    for position in range(canvas - 28 + 1):
        assert any(
            s <= position and position + 28 <= s + glimpse for s in starts
        )
    # The fewest: without any one start, some position is uncovered.
    for dropped in starts:
        rest = [s for s in starts if s != dropped]
        assert not all(
            any(s <= p and p + 28 <= s + glimpse for s in rest)
            for p in range(canvas - 28 + 1)
        )
