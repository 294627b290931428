"""The profile job: time an architecture, as the main job builds it, on
the runtime it will be served on, for `train --latency_profile`.

`run(ProfileConfig(...))` builds the architecture exactly as
`train_job.run` would with the same `arch`, `gate_input` and
`estimator` (so the node names match), times it with
`keras_d2nn.profiling.profile_latency` (weights do not change the time:
it is untrained), writes the `LatencyProfile` as JSON to `output` and
prints each node's milliseconds. `python -m keras_d2nn profile` is a thin
command line over it (docs/latency_cost.md).

Example:

```python
from keras_d2nn.experiments import profile_job

profile = profile_job.run(profile_job.ProfileConfig(
    arch="high_low", runtime="tf_cpu", batch_size=8, repeats=2,
    output="profile.json"))
profile.full_ms()
```
"""

from __future__ import annotations

import dataclasses
import os

from keras_d2nn.experiments import train_job
from keras_d2nn.profiling import RUNTIMES
from keras_d2nn.profiling import profile_latency


@dataclasses.dataclass
class ProfileConfig:
    """Settings of the profile job; the CLI flags map one to one.

    Example: `ProfileConfig(arch="cascade", runtime="litert").check()`.
    """

    arch: str = "high_low"
    dataset: str = "fashion_mnist"
    estimator: str | None = None
    gate_input: str | None = None
    runtime: str = "tf_cpu"
    # None: the runtime's default (64 on tf_cpu, 1 on litert).
    batch_size: int | None = None
    repeats: int = 20
    output: str | None = None

    def train_config(self) -> train_job.TrainConfig:
        """The main job's settings that decide the graph built."""
        return train_job.TrainConfig(
            arch=self.arch,
            dataset=self.dataset,
            estimator=self.estimator,
            gate_input=self.gate_input,
        )

    def check(self) -> ProfileConfig:
        """Raises `ValueError` naming the first bad setting."""
        self.train_config().check()
        train_job.check_choice("runtime", self.runtime, list(RUNTIMES))
        if self.batch_size is not None:
            train_job.check_at_least(self, "batch_size", 1)
        train_job.check_at_least(self, "repeats", 1)
        if not self.output:
            raise ValueError(
                "`output` should be the path of the JSON file to write. "
                f"Received: output={self.output!r}"
            )
        folder = os.path.dirname(os.path.abspath(self.output))
        if not os.path.isdir(folder):
            raise ValueError(
                f"`output` should be in an existing folder; {folder!r} is "
                f"not one. Received: output={self.output!r}"
            )
        return self


def run(config: ProfileConfig, log=print):
    """Profiles the configured architecture; returns the `LatencyProfile`
    (also written to `config.output`).

    Example: `run(ProfileConfig(arch="cascade", output="cascade.json"))`.
    """
    config = config.check()
    output = str(config.output)  # checked: a path
    model = train_job.builder(config.train_config())()
    log(
        f"Timing {config.arch} on {config.runtime} "
        f"({config.repeats} rounds per node and per route)."
    )
    profile = profile_latency(
        model,
        runtime=config.runtime,
        batch_size=config.batch_size,
        repeats=config.repeats,
    )
    profile.save(output)
    log(
        f"\n{'node':<16} {'ms per example':>14} {'ms per batch':>12}  "
        f"(batch {profile.batch_size})"
    )
    for node, ms in profile.node_ms.items():
        fixed = profile.node_fixed_ms.get(node, 0.0)
        log(f"{node:<16} {ms:>14.4f} {fixed:>12.4f}")
    log(f"{'base':<16} {'':>14} {profile.base_ms:>12.4f}")
    log(
        f"\nfull network: {profile.full_ms():.4f} ms per example; wrote "
        f"{output}: `python -m keras_d2nn train "
        f"--arch={config.arch} --latency_profile={output}` trains "
        "on these milliseconds."
    )
    return profile
