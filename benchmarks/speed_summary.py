"""The performance goals against the latest benchmark results, as
Markdown tables (what docs/performance.md shows).

Reads the JSON written by `speed.py`, `train_speed.py`,
`serving_memory.py` and `latency_cost.py` from `--results` and prints,
for serving, one line per network and runtime setting (efficiency, routed
time / route mix, every branch / equivalent static network, each against
its goal), then one line per training, memory and latency-cost goal:

    python benchmarks/speed_summary.py
"""

import argparse
import json
import pathlib


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results")
    return parser.parse_args()


def load(results, name):
    path = pathlib.Path(results) / name
    return json.loads(path.read_text()) if path.exists() else None


def pick(rows, **where):
    found = [
        r
        for r in rows
        if all(
            (abs(r[k] - v) < 0.02 if isinstance(v, float) else r[k] == v)
            for k, v in where.items()
        )
    ]
    return found[0] if found else None


SHARES = (0.1, 0.3, 0.5)
REAL_SIZE = ("high_low_224", "cascade_224")
# Efficiency goals: issue 18's on the real-size networks (every share and
# runtime); the earlier ones on the small networks where they were set.
SMALL_EFFICIENCY_GOALS = {("tf", 256): 0.85, ("litert", 1): 0.90}
ROUTING_OVERHEAD_GOAL = 1.05  # routed / route mix, every network
EVERY_BRANCH_GOAL = 1.05  # all branches routed / equivalent static


def settings(rows):
    """The (arch, runtime, batch, threads) settings timed, in row order."""
    seen = []
    for r in rows:
        key = (r["arch"], r["runtime"], r["batch"], r.get("threads"))
        if "error" not in r and key not in seen:
            seen.append(key)
    return seen


def serving_table(speed):
    """One line per network and runtime setting: efficiency and routed /
    route mix at 10, 30 and 50% expensive, and every branch / the
    equivalent static network, each with its goal met or missed; and the
    efficiency of the cheapest route's static network alone (the lowest
    of its three measurements), which bounds what routing can reach."""
    rows = speed["rows"]
    lines = [
        "| network | runtime | efficiency at 10 / 30 / 50% | "
        "routed / route mix | every branch / equivalent static | "
        "cheap route alone: efficiency |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for arch, runtime, batch, threads in settings(rows):
        where = dict(arch=arch, runtime=runtime, batch=batch, policy="forced")
        if threads is not None:
            where["threads"] = threads
        routed = [
            pick(rows, routed_fraction=f, mode="routed", **where)
            for f in SHARES
        ]
        if not all(routed):
            continue
        goal = (
            0.90
            if arch in REAL_SIZE
            else SMALL_EFFICIENCY_GOALS.get((runtime, batch))
        )
        efficiency = [r["efficiency"] for r in routed]
        overhead = [r["routing_overhead"] for r in routed]
        every = pick(rows, routed_fraction=1.0, mode="routed", **where)
        static = pick(
            rows, routed_fraction=1.0, mode="static_equivalent", **where
        )
        setting = f"{runtime} batch {batch}" + (
            f", {threads} thread{'s' if threads > 1 else ''}" if threads else ""
        )
        every_cell = (
            _cell(
                [every["ms_per_example"] / static["ms_per_example"]],
                EVERY_BRANCH_GOAL,
                "<=",
            )
            if every and static
            else "-"
        )
        # The cheapest route's static network alone, against the full one:
        # below 1, its layers run at a lower FLOP rate, and no routing can
        # turn the FLOPs it saves into as much time.
        cheap = [
            r["efficiency"]
            for f in SHARES
            if (
                r := pick(rows, routed_fraction=f, mode="static_cheap", **where)
            )
        ]
        cheap_cell = f"{min(cheap):.2f}" if cheap else "-"
        lines.append(
            f"| {arch} | {setting} | {_cell(efficiency, goal, '>=')} | "
            f"{_cell(overhead, ROUTING_OVERHEAD_GOAL, '<=')} | {every_cell} | "
            f"{cheap_cell} |"
        )
    return lines


# Issue 30's goals for the attention D2NN against its full-resolution
# network: efficiency in TF at batch 256 and in LiteRT at batch 1.
ATTENTION_EFFICIENCY_GOALS = {("tf", 256): 0.90, ("litert", 1): 0.90}


def attention_table(speed):
    """One line per canvas and runtime setting of the attention D2NN (each
    example's region at random): FLOP and time speedup over the
    full-resolution network, efficiency (with its goal where one was
    set), the one-region static network's efficiency (routing with no
    overhead), and routed / that network."""
    rows = speed["rows"]
    lines = [
        "| canvas | runtime | FLOP speedup | time speedup | efficiency | "
        "one region, static: efficiency | routed / one region static |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arch, runtime, batch, threads in settings(rows):
        where = dict(arch=arch, runtime=runtime, batch=batch, policy="uniform")
        if threads is not None:
            where["threads"] = threads
        routed = pick(rows, mode="routed", **where)
        static = pick(rows, mode="static_equivalent", **where)
        if not (routed and static):
            continue
        goal = ATTENTION_EFFICIENCY_GOALS.get((runtime, batch))
        efficiency = (
            _cell([routed["efficiency"]], goal, ">=")
            if goal
            else f"{routed['efficiency']:.2f}"
        )
        setting = f"{runtime} batch {batch}" + (
            f", {threads} thread{'s' if threads > 1 else ''}" if threads else ""
        )
        lines.append(
            f"| {arch} ({routed['regions']} regions) | {setting} | "
            f"{routed['flop_speedup']:.2f} | {routed['time_speedup']:.2f} | "
            f"{efficiency} | {static['efficiency']:.2f} | "
            f"{routed['routing_overhead']:.2f} |"
        )
    return lines


def _cell(values, goal, direction):
    """`"0.91 / 0.95 / 0.97: met (>= 0.90)"`; no verdict without a goal."""
    text = " / ".join(f"{v:.2f}" for v in values)
    if goal is None:
        return text
    met = all(v >= goal if direction == ">=" else v <= goal for v in values)
    return f"{text}: {'met' if met else '**missed**'} ({direction} {goal:.2f})"


def training_lines(train):
    rows, lines = train["rows"], []
    for arch in ("high_low", "cascade"):
        routed = pick(rows, arch=arch, mode="routed", routed_fraction=0.3)
        masked = pick(rows, arch=arch, mode="masked", routed_fraction=0.3)
        everything = pick(rows, arch=arch, mode="routed", routed_fraction=1.0)
        if everything:
            lines.append(
                _line(
                    f"{arch}, training, every example on every branch: D2NN "
                    "step / static step",
                    1.3,
                    1.0 / everything["time_speedup"],
                    "<=",
                    "worst case of a D2NN epoch",
                )
            )
        learned = next(
            (r for r in rows if r["arch"] == arch and r["mode"] == "learned"),
            None,
        )
        if routed and masked:
            lines.append(
                _line(
                    f"{arch}, training at 30% expensive: routed speed / masked",
                    1.5,
                    routed["examples_per_second"]
                    / masked["examples_per_second"],
                    ">=",
                )
            )
        if learned:
            lines.append(
                _line(
                    f"{arch}, D2NN epoch (controllers learning) / static epoch",
                    1.3,
                    1.0 / learned["time_speedup"],
                    "<=",
                    f"expensive rate {learned['routed_fraction']:.3f}",
                )
            )
    return lines


def memory_lines(memory):
    lines = []
    for row in memory["rows"]:
        if row["mode"] == "routed":
            lines.append(
                _line(
                    f"{row['arch']}, serving batch {row['batch']}: "
                    "peak memory / static",
                    1.2,
                    row["total_vs_static"],
                    "<=",
                    f"memory serving added x{row['vs_static']:.2f}",
                )
            )
    return lines


LATENCY_RESULTS = {
    "latency_cost.json": "cascade, TF batch 64",
    "latency_cost_litert.json": "cascade, LiteRT batch 1",
    "latency_cost_wide_or_deep.json": "wide_or_deep, TF batch 64",
    "latency_cost_wide_or_deep_litert.json": "wide_or_deep, LiteRT batch 1",
}


def latency_lines(results):
    """Issue 18's checks of the latency cost, from `latency_cost.py`'s
    results: the fitted profile's prediction of every row within 10%, and
    the latency-priced D2NN faster than the FLOP-priced one at every
    matched accuracy (both frontiers interpolated)."""
    lines = []
    for name, what in LATENCY_RESULTS.items():
        data = load(results, name)
        if data is None:
            lines.append(f"| ({name} missing) | | | | |")
            continue
        ratios = [
            r["predicted_over_measured"]
            for r in data.get("routes", []) + data["points"]
        ]
        within = sum(abs(r - 1.0) <= 0.10 for r in ratios)
        lines.append(
            _line(
                f"{what}: predicted / measured ms, farthest from 1",
                0.10,
                max(abs(r - 1.0) for r in ratios),
                "<=",
                f"{min(ratios):.2f}-{max(ratios):.2f}, "
                f"{within} of {len(ratios)} within 10%",
            )
        )
        speedups = [c["flop_over_latency"] for c in data["interpolated"]]
        if speedups:
            lines.append(
                _line(
                    f"{what}: FLOP-priced / latency-priced ms at matched "
                    "accuracy, lowest",
                    1.0,
                    min(speedups),
                    ">=",
                    f"{min(speedups):.2f}-{max(speedups):.2f} "
                    f"at {len(speedups)} accuracies",
                )
            )
    return lines


def _line(what, goal, value, direction, note=""):
    met = value >= goal if direction == ">=" else value <= goal
    return (
        f"| {what} | {direction} {goal:.2f} | {value:.2f} | "
        f"{'met' if met else 'missed'} | {note} |"
    )


def main():
    args = parse_args()
    speed = load(args.results, "speed.json")
    if speed is None:
        print("(speed.json missing)")
    else:
        print("\n".join(serving_table(speed)))
        print()
        print("\n".join(attention_table(speed)))
    print()
    print("| figure | goal | measured | | note |")
    print("| --- | --- | --- | --- | --- |")
    for name, make in (
        ("train_speed.json", training_lines),
        ("serving_memory.json", memory_lines),
    ):
        data = load(args.results, name)
        if data is None:
            print(f"| ({name} missing) | | | | |")
            continue
        print("\n".join(make(data)))
    print("\n".join(latency_lines(args.results)))


if __name__ == "__main__":
    main()
