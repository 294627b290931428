"""The performance goals against the latest benchmark results, as a
Markdown table (what docs/performance.md shows).

Reads the JSON written by `speed.py`, `train_speed.py` and
`serving_memory.py` from `--results` and prints one line per goal:

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


def serving_lines(speed):
    rows, lines = speed["rows"], []
    for arch in ("high_low", "cascade"):
        for runtime, batch, goal in (("tf", 256, 0.85), ("litert", 1, 0.90)):
            for fraction in (0.1, 0.3, 0.5):
                row = pick(
                    rows,
                    arch=arch,
                    runtime=runtime,
                    batch=batch,
                    routed_fraction=fraction,
                    mode="routed",
                    policy="forced",
                )
                if row:
                    lines.append(
                        _line(
                            f"{arch}, {runtime} batch {batch}, {fraction:.0%} "
                            "expensive: efficiency",
                            goal,
                            row["efficiency"],
                            ">=",
                            f"overhead vs route mix "
                            f"x{row['routing_overhead']:.2f}",
                        )
                    )
        for runtime, batch in (("tf", 1), ("tf", 256), ("litert", 1)):
            routed = pick(
                rows,
                arch=arch,
                runtime=runtime,
                batch=batch,
                routed_fraction=1.0,
                mode="routed",
            )
            static = pick(
                rows,
                arch=arch,
                runtime=runtime,
                batch=batch,
                routed_fraction=1.0,
                mode="static_equivalent",
            )
            if routed and static:
                lines.append(
                    _line(
                        f"{arch}, {runtime} batch {batch}, every branch: time / "
                        "equivalent static",
                        1.10,
                        routed["ms_per_example"] / static["ms_per_example"],
                        "<=",
                    )
                )
    return lines


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
                    f"{row['arch']}, serving batch {row['batch']}: peak memory / "
                    "static",
                    1.2,
                    row["total_vs_static"],
                    "<=",
                    f"memory serving added x{row['vs_static']:.2f}",
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
    print("| figure | goal | measured | | note |")
    print("| --- | --- | --- | --- | --- |")
    for name, make in (
        ("speed.json", serving_lines),
        ("train_speed.json", training_lines),
        ("serving_memory.json", memory_lines),
    ):
        data = load(args.results, name)
        if data is None:
            print(f"| ({name} missing) | | | | |")
            continue
        print("\n".join(make(data)))


if __name__ == "__main__":
    main()
