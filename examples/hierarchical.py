"""Hierarchical: a coarse classifier (tops, shoes, others) feeds a
controller that runs one, two or all three fine-grained experts.

Trains with the two-phase recipe on 20,000 Fashion-MNIST images (2 epochs
of every expert on every image, then 1 of the controller alone), lands it
on a budget of 0.6 of the FLOPs of running all experts with 5,000
held-out images, prints the test accuracy beside the best fixed set of
experts at the same FLOPs, then, for each true group, which experts the
images went to.
Run: `python examples/hierarchical.py`.
"""

import keras
import numpy as np

import keras_d2nn
from keras_d2nn import data
from keras_d2nn.experiments import baselines

train = data.load("fashion_mnist", "train[:20000]", batch_size=128)
x_held_out, _ = data.load_arrays("fashion_mnist", "train[-5000:]")
x_test, y_test = data.load_arrays("fashion_mnist", "test")

model = keras_d2nn.architectures.hierarchical()
keras_d2nn.fit_two_phase(
    model,
    train,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    epochs=2,
    gate_epochs=1,
    compile_kwargs={"cost_weight": 0.0, "task_reward": "neg_loss"},
    shuffle=False,
)
model.calibrate_budget(x_held_out, target_cost=0.6)
routes = model.route(x_test, labels=y_test)
print(
    f"test accuracy {routes.accuracy:.4f}, "
    f"mean cost {routes.mean_cost_fraction:.3f} of running every expert"
)
front = baselines.pareto_front(baselines.route_points(model, x_test, y_test))
best = baselines.front_accuracy(front, routes.mean_flops)
print(
    f"best fixed set of experts at the same FLOPs: {best:.4f} "
    f"({100 * (routes.accuracy - best):+.2f} points)"
)

groups = model.graph.metadata["groups"]
experts = model.plan.nodes["route"].actions
for group, labels in groups.items():
    members = np.isin(y_test, labels)
    shares = np.bincount(
        routes.decisions["route"][members], minlength=len(experts)
    )
    print(
        f"{group:<7} ->",
        ", ".join(
            f"{e} {s / members.sum():.0%}" for e, s in zip(experts, shares) if s
        ),
    )
