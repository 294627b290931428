"""D2NNModel: fit/evaluate/predict, metrics, compile options, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_d2nn import Controller
from keras_d2nn import D2NNModel
from keras_d2nn import Graph
from keras_d2nn.testing import LOSS
from keras_d2nn.testing import TestCase
from keras_d2nn.testing import small_high_low
from keras_d2nn.testing import toy_data


class ModelTest(TestCase):
    def test_fit_shows_cost_and_action_rates(self):
        model = small_high_low()
        model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.2)
        x, y = toy_data()
        history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        for key in ("loss", "accuracy", "cost", "gate_stop", "gate_high"):
            self.assertIn(key, history.history)
        rates = np.array(history.history["gate_stop"]) + np.array(
            history.history["gate_high"]
        )
        self.assertAllClose(rates, [1.0, 1.0], atol=1e-5)
        cost = history.history["cost"][-1]
        self.assertGreater(cost, 0.0)
        self.assertLessEqual(cost, 1.0)
        results = model.evaluate(x, y, verbose=0, return_dict=True)
        routes = model.route(x)
        # evaluate's cost is the mean executed fraction under greedy routing.
        self.assertAllClose(
            results["cost"],
            routes["executed_flops"].mean() / model.full_flops,
            atol=1e-5,
        )
        self.assertAllClose(
            results["gate_high"],
            np.mean(routes["decisions"]["gate"] == 1),
            atol=1e-5,
        )
        self.assertEqual(model.predict(x, verbose=0).shape, (256, 3))

    def test_training_updates_modules_and_controller(self):
        model = small_high_low()
        model.compile("adam", LOSS, cost_weight=0.5)
        x, y = toy_data()
        gate = model.plan.nodes["gate"].layer
        high = model.plan.nodes["high"].layer
        before_gate = [w.numpy().copy() for w in gate.trainable_weights]
        before_high = [w.numpy().copy() for w in high.trainable_weights]
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        assert any(
            not np.allclose(b, w.numpy())
            for b, w in zip(before_gate, gate.trainable_weights)
        )
        assert any(
            not np.allclose(b, w.numpy())
            for b, w in zip(before_high, high.trainable_weights)
        )
        self.assertGreater(float(model.policy.updates.numpy()), 0)

    def test_cost_weight_can_change_between_epochs(self):
        model = small_high_low()
        model.compile("adam", LOSS, cost_weight=0.0)
        seen = []

        class Ramp(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.model.cost_weight = 0.25 * epoch
                seen.append(float(self.model._cost_weight.numpy()))

        x, y = toy_data()
        model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[Ramp()])
        self.assertEqual(seen, [0.0, 0.25, 0.5])
        self.assertEqual(model.cost_weight, 0.5)

    def test_standard_callbacks_and_tf_data(self):
        model = small_high_low()
        model.compile("adam", LOSS, metrics=["accuracy"], cost_weight=0.1)
        x, y = toy_data()
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        path = self.get_temp_dir() + "/best.keras"
        history = model.fit(
            ds,
            validation_data=ds,
            epochs=3,
            verbose=0,
            shuffle=False,
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    path, monitor="val_loss", save_best_only=True
                ),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=5),
            ],
        )
        self.assertIn("val_cost", history.history)
        restored = keras.models.load_model(path)
        self.assertIsInstance(restored, D2NNModel)

    def test_save_and_load_round_trip(self):
        model = small_high_low()
        model.compile(
            "adam",
            LOSS,
            metrics=["accuracy"],
            cost_weight=0.3,
            entropy_weight=0.05,
            task_reward="neg_loss",
        )
        x, y = toy_data()
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        loaded = self.run_model_saving_test(model, x)
        self.assertAlmostEqual(loaded.cost_weight, 0.3, places=6)
        self.assertEqual(loaded.task_reward, "neg_loss")
        self.assertEqual(loaded.policy.entropy_weight, 0.05)
        self.assertAllClose(
            loaded.policy.reward_average, model.policy.reward_average
        )
        # The optimizer comes back as it was: its step count (4 batches)
        # and Adam's moments, not zeros (in the same order: the layer
        # names in their paths are numbered anew).
        self.assertEqual(int(model.optimizer.iterations), 4)
        self.assertEqual(int(loaded.optimizer.iterations), 4)
        saved = model.optimizer.variables
        restored = loaded.optimizer.variables
        self.assertEqual(len(restored), len(saved))
        moments = [
            v for v in saved if v.path.endswith(("momentum", "velocity"))
        ]
        self.assertGreater(len(moments), 10)
        self.assertTrue(any(v.numpy().any() for v in moments))
        for want, got in zip(saved, restored):
            self.assertAllClose(got, want, msg=want.path)
        # And keeps counting: the loaded model trains on from step 4.
        loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)
        self.assertEqual(int(loaded.optimizer.iterations), 8)

    def test_get_config_round_trip(self):
        model = small_high_low()
        rebuilt = D2NNModel.from_config(model.get_config())
        self.assertEqual(rebuilt.get_config(), model.get_config())
        self.assertEqual(rebuilt.full_flops, model.full_flops)

    def test_masked_execution_mode_trains_too(self):
        graph = small_high_low().graph
        model = D2NNModel(graph, execution="masked")
        model.compile("adam", LOSS, cost_weight=0.1)
        x, y = toy_data()
        gate = model.plan.nodes["gate"].layer
        high = model.plan.nodes["high"].layer
        weights = gate.trainable_weights + high.trainable_weights
        before = [w.numpy().copy() for w in weights]
        history = model.fit(x, y, epochs=3, batch_size=64, verbose=0)
        # The modules and the controller learnt (12 policy updates).
        after = [w.numpy() for w in weights]
        self.assertTrue(
            all(not np.array_equal(b, a) for b, a in zip(before, after))
        )
        self.assertEqual(int(model.policy.updates.numpy()), 12)
        loss = history.history["loss"]
        self.assertLess(loss[-1], loss[0])
        # Masked execution computes what routed execution does: a routed
        # model on the same graph (the same layers) agrees with it.
        routed = D2NNModel(graph)
        masked, expected = model.trace(x), routed.trace(x)
        np.testing.assert_array_equal(
            masked.decisions["gate"], expected.decisions["gate"]
        )
        self.assertTrue(0 < np.mean(expected.decisions["gate"]) < 1)
        self.assertAllClose(
            masked.outputs["logits"], expected.outputs["logits"], atol=1e-5
        )

    def test_multiple_inputs_by_name(self):
        graph = Graph()
        graph.input("a", shape=(3,))
        graph.input("b", shape=(2,))
        graph.f_node("cat", keras.layers.Concatenate(), inputs=["a", "b"])
        graph.q_node("q", Controller(2, hidden_units=()), inputs="cat")
        graph.f_node("x", keras.layers.Dense(2), inputs="cat", when=("q", 0))
        graph.f_node("z", keras.layers.Dense(2), inputs="cat", when=("q", 1))
        graph.merge("out", inputs=["x", "z"])
        graph.output("out")
        model = D2NNModel(graph)
        model.compile("adam", LOSS)
        inputs = {
            "a": np.ones((8, 3), "float32"),
            "b": np.ones((8, 2), "float32"),
        }
        model.fit(inputs, np.zeros(8, "int32"), epochs=1, verbose=0)
        self.assertEqual(model.predict(inputs, verbose=0).shape, (8, 2))
        with self.assertRaisesRegex(ValueError, r"inputs named \['a', 'b'\]"):
            model.predict({"a": inputs["a"]}, verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cost_weight": -1.0}, "`cost_weight` should be a finite number >= 0"),
        ({"cost_weight": float("nan")}, "finite number >= 0"),
        ({"cost_weight": "high"}, "`cost_weight` should be a number"),
        ({"task_reward": "f1"}, "`task_reward` should be one of"),
        ({"entropy_weight": -0.1}, "`entropy_weight` should be >= 0"),
        (
            {"baseline_momentum": 1.0},
            r"`baseline_momentum` should be in \[0, 1\)",
        ),
    ],
)
def test_compile_rejects_bad_arguments(kwargs, message):
    model = small_high_low()
    with pytest.raises(ValueError, match=message):
        model.compile("adam", LOSS, **kwargs)


def test_compile_needs_a_loss():
    with pytest.raises(ValueError, match="needs a `loss`"):
        small_high_low().compile("adam")


def test_bad_inputs_get_specific_messages():
    model = small_high_low()
    with pytest.raises(
        ValueError,
        match=r"Input 'image' should have shape "
        r"\(None, 6\).*received shape "
        r"\(4, 5\)",
    ):
        model.predict(np.ones((4, 5), "float32"), verbose=0)
    with pytest.raises(ValueError, match="should hold numbers"):
        model.trace(np.array([["a"] * 6]))
    with pytest.raises(ValueError, match="`execution` should be one of"):
        D2NNModel(model.graph, execution="lazy")
    with pytest.raises(TypeError, match="needs a keras_d2nn.Graph"):
        D2NNModel("high_low")


class RoutingTest(TestCase):
    def test_constant_routing_trains_a_static_network(self):
        model = small_high_low()
        model.compile("adam", LOSS, cost_weight=0.5)
        model.set_routing({"gate": "high"})
        x, y = toy_data()
        gate = model.plan.nodes["gate"].layer
        before = [w.numpy().copy() for w in gate.trainable_weights]
        history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        self.assertEqual(history.history["gate_high"], [1.0])
        self.assertAllClose(history.history["cost"], [1.0], atol=1e-6)
        for b, w in zip(before, gate.trainable_weights):
            self.assertAllClose(w, b)  # forced controllers do not learn
        self.assertEqual(model.routing, {"gate": ("constant", 1)})
        model.set_routing(None)
        self.assertEqual(model.routing, {})

    def test_random_routing_follows_the_probabilities(self):
        model = small_high_low()
        model.set_routing({"gate": [0.7, 0.3]})
        x, _ = toy_data(n=4000)
        decisions = model.route(x, batch_size=500)["decisions"]["gate"]
        self.assertAllClose(np.mean(decisions == 1), 0.3, atol=0.03)

    def test_bad_routing_specs(self):
        model = small_high_low()
        with self.assertRaisesRegex(ValueError, "'nope' is not a controller"):
            model.set_routing({"nope": 0})
        with self.assertRaisesRegex(ValueError, "has no action 'medium'"):
            model.set_routing({"gate": "medium"})
        with self.assertRaisesRegex(ValueError, "summing to 1"):
            model.set_routing({"gate": [0.5, 0.6]})


def test_frozen_modules_stay_while_the_controllers_learn():
    model = small_high_low()
    model.freeze_modules()
    model.compile("adam", LOSS, cost_weight=0.1)
    modules = {
        n.name: [w.numpy() for w in n.layer.weights]
        for n in model.plan.order
        if n.kind == "f"
    }
    gate = [w.numpy() for w in model.plan.nodes["gate"].layer.trainable_weights]
    x, y = toy_data(256)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    for name, before in modules.items():
        for old, new in zip(before, model.plan.nodes[name].layer.weights):
            np.testing.assert_array_equal(old, new.numpy())
    after = model.plan.nodes["gate"].layer.trainable_weights
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(gate, after))
    model.freeze_modules(False)
    assert all(n.layer.trainable for n in model.plan.order if n.kind == "f")
