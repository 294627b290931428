"""Issue 28's benchmark: the paper's chain and hierarchical D2NNs against
the best non-learned alternative at matched FLOPs.

For each seed, on Fashion-MNIST (`--train_examples` training images, the
last `--validation_examples` of the 60,000 held out for landing on a
budget; every number on the 10,000 test images), every contender trained
on the same images for `--epochs` epochs:

- `d2nn`: `fit_two_phase` with its defaults (modules on uniformly random
  routes, controllers regressing every action's reward, then the
  controllers alone for `--gate_epochs` on the frozen modules), landed on
  each budget with `calibrate_budget` on the held-out images: one trained
  model serves every budget;
- `routes`: every static route of that same trained network (each joint
  decision forced on every example; controllers' FLOPs excluded) and
  their Pareto front: the best fixed choice at each cost, per-example
  routing's reference. These are routes of one supernet whose stages
  trained on random shares of the examples, not networks trained alone;
- `plain`: static networks trained alone (`set_routing` a constant
  route from the first step): the chain's all-full, all-half,
  all-quarter and all-skip; the hierarchical model's one expert (a flat
  network of the cost of coarse stage plus one expert) and all experts;
- `random`: the D2NN's network with every controller deciding at random
  at the D2NN's action rates;
- hierarchical only, rules on the D2NN's network: `argmax` (the expert of
  the coarse classifier's top group) and `argmax+second` (also the
  second group's expert when the coarse top-1 probability is below a
  threshold, swept);
- `oracle`: the ceiling, each example on the cheapest route that
  classifies it right, cheapest first until the budget is spent.

The best alternative at a D2NN's cost is the highest of the Pareto fronts
(routes, plain networks, rules) interpolated there, random routing, and
`mix`: the upper hull of every fixed choice, i.e. one fixed choice on a
random share of the examples and another on the rest. The difference is
in points of accuracy. `--summary_only` compares a saved run again.

    python benchmarks/paper_experiments.py --arch=chain --seeds=0,1
    python benchmarks/paper_experiments.py --arch=hierarchical --seeds=0,1
"""

import argparse
import itertools
import json
import pathlib
import platform
import time

import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn.data import pipelines
from keras_d2nn.experiments import baselines
from keras_d2nn.recipes import fit_two_phase

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
BUDGETS = {
    "chain": "0.3,0.4,0.5,0.6,0.7,0.8",
    "hierarchical": "0.4,0.5,0.6,0.7,0.8,0.9",
}
PLAIN_ROUTES = {
    "chain": {
        f"all-{v}": {f"choose{i}": v for i in (1, 2, 3)}
        for v in ("full", "half", "quarter", "skip")
    },
    "hierarchical": {
        "one expert (flat)": {"route": "tops"},
        "all experts": {"route": "all"},
    },
}


# The plain networks are trained as plain networks: the hierarchical
# model's experts each on every image (not specialists), the one chosen
# (or all of them) alone from the first step.
PLAIN_OPTIONS = {"chain": {}, "hierarchical": {"specialists": False}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="chain", choices=list(BUDGETS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--budgets", default="")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--gate_epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--train_examples", type=int, default=20_000)
    parser.add_argument("--validation_examples", type=int, default=5000)
    parser.add_argument("--test_examples", type=int, default=0)
    parser.add_argument("--no_plain", action="store_true")
    parser.add_argument(
        "--options",
        type=json.loads,
        default={},
        help="builder arguments as JSON, e.g. '{\"specialists\": true}'",
    )
    parser.add_argument("--output", default="")
    parser.add_argument(
        "--summary_only",
        action="store_true",
        help="train nothing: compare again, print and plot what --output holds",
    )
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.budgets = [
        float(b) for b in (args.budgets or BUDGETS[args.arch]).split(",")
    ]
    if not args.output:
        args.output = f"benchmarks/results/paper_{args.arch}.json"
    return args


def load_data(args):
    x, y = pipelines.load_fashion_mnist("train")
    held = args.validation_examples
    train = (x[:-held][: args.train_examples], y[:-held][: args.train_examples])
    x_test, y_test = pipelines.load_fashion_mnist("test")
    if args.test_examples:
        x_test, y_test = (
            x_test[: args.test_examples],
            y_test[: args.test_examples],
        )
    return train, x[-held:], (x_test, y_test)


def pareto(points):
    """The upper-left front of `(cost, accuracy)` points, by cost."""
    front, best = [], -1.0
    for cost, accuracy in sorted(points):
        if accuracy > best:
            front.append((cost, accuracy))
            best = accuracy
    return front


def interpolate(front, cost):
    """The front's accuracy at `cost` (flat beyond its ends: the best
    fixed choice at or below that cost)."""
    costs, accuracies = zip(*front)
    if cost < costs[0]:
        return None
    return float(np.interp(cost, costs, accuracies))


def upper_hull(points):
    """The upper concave hull of `(cost, accuracy)` points, by cost: what
    running one fixed choice on a random share of the examples and
    another on the rest reaches (a mix of two fixed choices, no
    learning)."""
    hull = []
    for point in sorted(pareto(points)):
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            # Drop the middle point when it lies below the chord.
            if (a2 - a1) * (point[0] - c1) <= (point[1] - a1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append(point)
    return hull


def fixed_points(rows, rules, plain):
    """Every non-learned contender's `(cost, accuracy)` by family."""
    return {
        "routes": [(r["cost"], r["accuracy"]) for r in rows],
        "rules": [(p["cost"], p["accuracy"]) for p in rules],
        "plain": [(p["cost"], p["accuracy"]) for p in plain],
    }


def compare(entry, families):
    """Adds to a budget's `entry` each alternative's accuracy at the
    D2NN's cost: each family's Pareto front interpolated, random routing
    at the D2NN's rates, and `mix`, the upper hull of every fixed choice
    of every family (two of them mixed at random); then the best and the
    difference in points."""
    cost = entry["cost"]
    alternatives = {
        name: interpolate(pareto(points), cost) if points else None
        for name, points in families.items()
    }
    everything = [p for points in families.values() for p in points]
    alternatives["mix"] = interpolate(upper_hull(everything), cost)
    random = entry["random"]
    alternatives["random"] = (
        random["accuracy"] if random["cost"] <= cost + 0.01 else None
    )
    known = {k: v for k, v in alternatives.items() if v is not None}
    best = max(known, key=known.get)
    entry["alternatives"] = alternatives
    entry["best_alternative"] = best
    entry["difference_points"] = 100 * (entry["accuracy"] - known[best])


def every_route(model):
    """Every joint decision as `{controller: action index}`."""
    plan = model.plan
    sizes = [range(len(plan.nodes[q].actions)) for q in plan.controllers]
    for joint in itertools.product(*sizes):
        yield dict(zip(plan.controllers, joint))


def static_routes(model, x, y):
    """Each static route's test accuracy, FLOP fraction (controllers
    excluded) and per-example correctness."""
    rows = []
    for joint in every_route(model):
        decisions = {q: np.full(len(x), a, np.int32) for q, a in joint.items()}
        routes = model.route(x, labels=y, decisions=decisions)
        flops = routes.without_controller_flops(model.plan).mean()
        rows.append(
            {
                "route": {
                    q: model.plan.nodes[q].actions[a] for q, a in joint.items()
                },
                "cost": float(flops / model.full_flops),
                "accuracy": routes.accuracy,
                "correct": routes.predictions == y,
            }
        )
    return rows


def oracle_accuracy(rows, cost):
    """Each example on its cheapest right route, cheapest first, until the
    mean cost reaches `cost`; the rest on the cheapest route."""
    cheapest = min(r["cost"] for r in rows)
    need = np.full(len(rows[0]["correct"]), np.inf)
    for r in rows:
        need = np.where(r["correct"], np.minimum(need, r["cost"]), need)
    extra = np.sort(need[np.isfinite(need)]) - cheapest
    spent = np.cumsum(extra) / len(need)
    return float(
        np.searchsorted(spent, cost - cheapest, side="right") / len(need)
    )


def random_at_rates(model, rates, x, y, seed):
    """The network with each controller deciding at random at `rates`."""
    generator = np.random.default_rng(seed)
    decisions = {
        q: generator.choice(
            len(p), size=len(x), p=np.asarray(p) / np.sum(p)
        ).astype(np.int32)
        for q, p in rates.items()
    }
    routes = model.route(x, labels=y, decisions=decisions)
    flops = routes.without_controller_flops(model.plan).mean()
    return routes.accuracy, float(flops / model.full_flops)


def coarse_rules(model, x, y, keep_predictions=False):
    """The hierarchical rules: `argmax` and `argmax+second` swept (each
    point with its test predictions if `keep_predictions`)."""
    plan = model.plan
    actions = plan.nodes["route"].actions
    groups = list(model.graph.metadata["groups"])
    coarse = model.route(x, values=("coarse",)).node_values["coarse"]
    probabilities = np.exp(coarse - coarse.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    order = np.argsort(-probabilities, axis=-1)
    top = probabilities.max(-1)
    first = np.array([actions.index(groups[g]) for g in order[:, 0]])
    pairs = []
    for a, b in order[:, :2]:
        members = sorted((a, b))
        pairs.append(actions.index("+".join(groups[m] for m in members)))
    pairs = np.array(pairs)
    points = []
    for threshold in [0.0] + list(np.quantile(top, np.linspace(0.05, 1, 20))):
        chosen = np.where(top < threshold, pairs, first).astype(np.int32)
        routes = model.route(x, labels=y, decisions={"route": chosen})
        flops = routes.without_controller_flops(plan).mean()
        points.append(
            {
                "rule": "argmax" if threshold == 0 else "argmax+second",
                "threshold": float(threshold),
                "cost": float(flops / model.full_flops),
                "accuracy": routes.accuracy,
            }
        )
        if keep_predictions:
            points[-1]["predictions"] = routes.predictions
    return points


def train_plain(args, routing, train, seed):
    keras.utils.set_random_seed(seed)
    model = architectures.ARCHITECTURES[args.arch](**PLAIN_OPTIONS[args.arch])
    model.set_routing(routing)
    model.compile("adam", LOSS, metrics=["accuracy"])
    model.fit(*train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    return model


def run_seed(args, seed, train, held_out, test):
    x_test, y_test = test
    keras.utils.set_random_seed(seed)
    model = architectures.ARCHITECTURES[args.arch](**args.options)
    start = time.time()
    fit_two_phase(
        model,
        *train,
        loss=LOSS,
        epochs=args.epochs,
        gate_epochs=args.gate_epochs,
        batch_size=args.batch_size,
        verbose=2,
        compile_kwargs={"cost_weight": 0.0, "task_reward": "neg_loss"},
    )
    seconds = time.time() - start
    rows = static_routes(model, x_test, y_test)
    front = pareto([(r["cost"], r["accuracy"]) for r in rows])
    rules = (
        coarse_rules(model, x_test, y_test)
        if args.arch == "hierarchical"
        else []
    )
    plain = []
    if not args.no_plain:
        for name, routing in PLAIN_ROUTES[args.arch].items():
            network = train_plain(args, routing, train, seed)
            routes = network.route(x_test, labels=y_test)
            plain.append(
                {
                    "name": name,
                    "cost": float(
                        routes.without_controller_flops(network.plan).mean()
                        / network.full_flops
                    ),
                    "accuracy": routes.accuracy,
                }
            )
            row = plain[-1]
            print(f"  plain {name}: {row['accuracy']:.4f} at {row['cost']:.3f}")
    budgets = []
    for budget in args.budgets:
        landing = model.calibrate_budget(held_out, target_cost=budget)
        routes = model.route(x_test, labels=y_test)
        cost = routes.mean_flop_fraction
        rates = baselines.action_rates(model, routes.decisions)
        random_accuracy, random_cost = random_at_rates(
            model, rates, x_test, y_test, seed
        )
        entry = {
            "budget": budget,
            "price": landing.delta,
            "cost": cost,
            "accuracy": routes.accuracy,
            "action_rates": rates,
            "random": {"accuracy": random_accuracy, "cost": random_cost},
            "oracle": oracle_accuracy(rows, cost),
        }
        compare(entry, fixed_points(rows, rules, plain))
        budgets.append(entry)
        best = entry["best_alternative"]
        known = entry["alternatives"]
        print(
            f"  budget {budget}: D2NN {routes.accuracy:.4f} at {cost:.3f}; "
            f"best alternative ({best}) {known[best]:.4f}: "
            f"{entry['difference_points']:+.2f} pts; "
            f"oracle {entry['oracle']:.4f}; "
            + "; ".join(
                f"{q} " + "/".join(f"{r:.2f}" for r in v)
                for q, v in rates.items()
            )
        )
    return {
        "seed": seed,
        "train_seconds": seconds,
        "full_flops": model.full_flops,
        "actions": {
            q: list(model.plan.nodes[q].actions) for q in model.plan.controllers
        },
        "routes": [
            {k: v for k, v in r.items() if k != "correct"} for r in rows
        ],
        "routes_front": front,
        "rules": rules,
        "plain": plain,
        "budgets": budgets,
    }


def plot(results, path, arch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1,
        len(results["seeds"]),
        figsize=(6 * len(results["seeds"]), 4.5),
        squeeze=False,
    )
    for axis, run in zip(axes[0], results["seeds"]):
        costs, accuracies = zip(
            *[(r["cost"], r["accuracy"]) for r in run["routes"]]
        )
        axis.scatter(costs, accuracies, s=8, color="0.7", label="static routes")
        axis.plot(*zip(*run["routes_front"]), color="0.4", label="their front")
        families = fixed_points(run["routes"], run["rules"], run["plain"])
        hull = upper_hull([p for points in families.values() for p in points])
        axis.plot(
            *zip(*hull), ":", color="black", label="mix of two fixed choices"
        )
        if run["rules"]:
            axis.plot(
                [p["cost"] for p in run["rules"]],
                [p["accuracy"] for p in run["rules"]],
                "--",
                color="tab:green",
                label="argmax(+second) rule",
            )
        for p in run["plain"]:
            axis.scatter(
                p["cost"], p["accuracy"], marker="s", color="tab:orange"
            )
        if run["plain"]:
            axis.scatter(
                [],
                [],
                marker="s",
                color="tab:orange",
                label="plain static networks",
            )
        axis.plot(
            [b["cost"] for b in run["budgets"]],
            [b["accuracy"] for b in run["budgets"]],
            "o-",
            color="tab:blue",
            label="D2NN (one model, calibrated)",
        )
        axis.scatter(
            [b["random"]["cost"] for b in run["budgets"]],
            [b["random"]["accuracy"] for b in run["budgets"]],
            marker="x",
            color="tab:red",
            label="random at D2NN's rates",
        )
        low = min(b["accuracy"] for b in run["budgets"]) - 0.02
        axis.set_ylim(low, max(r["accuracy"] for r in run["routes"]) + 0.01)
        axis.set_xlabel("FLOPs / dearest route")
        axis.set_ylabel("test accuracy")
        axis.set_title(f"{arch}, seed {run['seed']}")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def summarise(results, path):
    """Compares every saved budget again (the alternatives may have
    changed since the run), writes the JSON and the plot, and prints each
    seed's difference per budget."""
    for run in results["seeds"]:
        families = fixed_points(run["routes"], run["rules"], run["plain"])
        for entry in run["budgets"]:
            compare(entry, families)
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.with_suffix(".png"), results["arch"])
    print(
        "budget | " + " | ".join(f"seed {r['seed']}" for r in results["seeds"])
    )
    for i, entry in enumerate(results["seeds"][0]["budgets"]):
        print(
            f"{entry['budget']} | "
            + " | ".join(
                f"{run['budgets'][i]['difference_points']:+.2f} "
                f"({run['budgets'][i]['best_alternative']})"
                for run in results["seeds"]
            )
        )


def main(argv=None):
    args = parse_args(argv)
    output = pathlib.Path(args.output)
    if args.summary_only:
        summarise(json.loads(output.read_text()), output)
        return
    train, held_out, test = load_data(args)
    results = {
        "arch": args.arch,
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("output",)
        },
        "machine": platform.platform(),
        "seeds": [],
    }
    for seed in args.seeds:
        print(f"seed {seed}")
        results["seeds"].append(run_seed(args, seed, train, held_out, test))
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1))
    summarise(results, output)


if __name__ == "__main__":
    main()
