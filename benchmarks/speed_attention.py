"""Serving speed of the attention D2NN on a large canvas: does looking at
one 48x48 region instead of the whole canvas turn its FLOPs into time?

`speed.py --archs=attention_112,attention_224` times, side by side in one
run, on canvases of 112x112 (25 regions) and 224x224 (81 regions):

- `static`: the full-resolution network (`full_resolution_network`: the
  glimpse network over the whole canvas), the dearest baseline;
- `static_equivalent`: the unpruned static network of one region (the
  context pass, the controller, one crop, the glimpse network, the head):
  what the D2NN would cost with zero routing overhead;
- `routed`: the D2NN with routed execution, each example's region drawn
  at random (all regions in use, the hardest case for batching);
- `masked`: every region cropped for every example, one crop kept (the
  glimpse network, after the merge of the crops, runs once either way).

FLOP speedup = full-resolution FLOPs / the mode's FLOPs; efficiency =
time speedup / FLOP speedup (1 when time follows FLOPs). Untrained
weights and uniform pixels: timing depends on neither.
"""

import bench_timing
import keras
import numpy as np

from keras_d2nn import architectures
from keras_d2nn.architectures.attention import full_resolution_network
from keras_d2nn.export import static_network
from keras_d2nn.graph import layer_flops

CANVASES = {"attention_112": 112, "attention_224": 224}


def mode_functions(model, full_resolution):
    """`{mode: f(images, decisions)}` of the attention D2NN's modes."""
    one_region = static_network.static_network(model, {"look": 0}, prune=False)

    d2nn, plain = bench_timing.d2nn_runner, bench_timing.plain_runner
    return {
        "static": plain(full_resolution),
        "static_equivalent": plain(one_region),
        "routed": d2nn(model, "routed"),
        "masked": d2nn(model, "masked"),
    }


def bench_attention(arch, args, log=print):
    """The timed rows of one canvas size, every runtime and batch of
    `args` (as `speed.py` parses them)."""
    keras.utils.set_random_seed(args.seed)
    size = CANVASES[arch]
    model = architectures.attention(input_shape=(size, size, 1))
    full_resolution = full_resolution_network(model)
    full = float(layer_flops(full_resolution, full_resolution.inputs[0]))
    regions = len(model.plan.nodes["look"].actions)
    rng = np.random.default_rng(args.seed)
    plans = bench_timing.runtime_plans(args)
    rows = []
    for runtime, batch, thread_counts in plans:
        log(f"{arch}: {runtime} batch {batch}")
        functions = mode_functions(model, full_resolution)
        if runtime == "tf":
            by_threads = {
                None: bench_timing.tf_runners(model, functions, batch)
            }
        else:
            by_threads = bench_timing.litert_runners(
                model, functions, batch, thread_counts
            )
        n = max(batch, args.real_size_examples)
        x = rng.random((n, size, size, 1), dtype=np.float32)
        chosen = rng.integers(0, regions, n).astype(np.int32)
        trace = model.trace(x, decisions={"look": chosen}, statistics=False)
        routed = float(np.mean(trace.executed_flops))
        flops = {
            "static": full,
            # Every region costs the same: the one-region network runs
            # what the D2NN runs (controller included).
            "static_equivalent": routed,
            "routed": routed,
            # Every crop (copies, 0 FLOPs) and the one glimpse.
            "masked": model.plan.all_nodes_flops,
        }
        work = bench_timing.batches_of(x, {"look": chosen}, batch)
        for threads_used, runners in by_threads.items():
            times = bench_timing.time_modes(runners, work, args.repeats)
            for mode, ms in times.items():
                row = {
                    "arch": arch,
                    "runtime": runtime,
                    "batch": batch,
                    **(
                        {}
                        if threads_used is None
                        else {"threads": threads_used}
                    ),
                    "regions": regions,
                    "routed_fraction": 1.0,
                    "policy": "uniform",
                    "mode": mode,
                    "ms_per_example": ms,
                    "flop_speedup": full / flops[mode],
                    "time_speedup": times["static"] / ms,
                }
                row["efficiency"] = row["time_speedup"] / row["flop_speedup"]
                if mode == "routed":
                    row["route_mix_ms"] = times["static_equivalent"]
                    row["routing_overhead"] = ms / times["static_equivalent"]
                rows.append(row)
                log(bench_timing.format_row(row))
    return rows
