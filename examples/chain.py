"""Chain: before each of three stages a controller picks the full, half
or quarter width version of the stage, or skips it.

Trains with the two-phase recipe on 20,000 Fashion-MNIST images (2 epochs
of the stages on uniformly random versions, then 1 of the controllers
alone), lands it on a budget of 0.5 of the all-full route's FLOPs with
5,000 held-out images, prints the test accuracy beside the best fixed
route of the same network at the same FLOPs, then how often each version
of each stage ran.
Run: `python examples/chain.py`.
"""

import keras

import keras_d2nn
from keras_d2nn import data
from keras_d2nn.experiments import baselines

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_held_out, _ = data.load_arrays("fashion_mnist", "train[-5000:]")
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.chain()
keras_d2nn.fit_two_phase(
    model,
    train,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    epochs=2,
    gate_epochs=1,
    # The per-example loss tells the versions apart more finely than
    # right-or-wrong.
    compile_kwargs={"cost_weight": 0.0, "task_reward": "neg_loss"},
    shuffle=False,
)
model.calibrate_budget(x_held_out, target_cost=0.5)
routes = model.route(x_test, labels=y_test)
print(
    f"test accuracy {routes.accuracy:.4f}, "
    f"mean cost {routes.mean_cost_fraction:.3f} of the all-full route"
)
# Each of the 64 routes taken by every image: the best fixed choice.
front = baselines.pareto_front(baselines.route_points(model, x_test, y_test))
best = baselines.front_accuracy(front, routes.mean_flops)
print(
    f"best fixed route at the same FLOPs: {best:.4f} "
    f"({100 * (routes.accuracy - best):+.2f} points)"
)
for controller, shares in baselines.action_rates(
    model, routes.decisions
).items():
    actions = model.plan.nodes[controller].actions
    print(
        controller,
        ", ".join(f"{a} {s:.1%}" for a, s in zip(actions, shares)),
    )
