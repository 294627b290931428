"""Running a validated plan on a batch: which examples reach which node.

Two modes produce the same values (tested):

- `"routed"` (the default, used in training and serving): for each node,
  the indices of the examples that reach it are gathered, the node runs on
  that sub-batch only, and its output is scattered back into a full-batch
  tensor. A node that reads only nodes of one sub-batch runs on it (or on
  the subset its controller picks) without going back to the full batch:
  the examples are carried along a chain (stage 2 -> head 2 -> exit 2) and
  the scatters nothing reads are pruned from traced graphs. The call sits
  in a `tf.cond` on the sub-batch size, so a node that no example reaches
  does not run at all (no kernels, no variable updates, no batch-norm
  statistics from an empty batch); it is then handed one placeholder row,
  never a zero-size tensor (see `_select`). Nodes that every example
  reaches whatever the controllers decide run on the whole batch without
  gather/scatter; with a static batch of one, conditional nodes use a
  `tf.cond` on the example's decision and no gather/scatter at all.
  Alternative crops of one image, one per action of a controller that
  decides for every example, merged (the attention D2NN's regions), run
  as one crop at each example's chosen corner (`indexed_crop`).
- `"masked"` (reference only): every node runs on the whole batch and the
  examples that should not have reached it are overwritten. This is what
  mask-based dynamic networks do; it saves nothing.

Only ops that convert to LiteRT builtins are used on the inference path
(`tf.where`, `tf.gather`, `tf.scatter_nd` with int32 indices, `tf.cond`).
"""

import typing

import tensorflow as tf

from keras_d2nn.execution import indexed_crop

MODES = ("routed", "masked")


class ExecutionTrace(typing.NamedTuple):
    """What happened when a plan ran on a batch.

    A named tuple, so that `tf.function`s can return it.

    Attributes:
        outputs: `{output name: tensor}`.
        values: `{node name: full-batch tensor}`, zeros (or the edge default)
            for examples the node did not run on.
        executed: `{node name: bool tensor (batch,)}`.
        decisions: `{controller: int32 (batch,)}`, -1 where it did not run.
        log_probs: `{controller: float (batch,)}`, 0 where it did not run.
        entropies: `{controller: float (batch,)}`, 0 where it did not run.
        logits: `{controller: float (batch, num_logits)}`, the controller's
            raw outputs (Q-values for Q-learning), 0 where it did not run.
        executed_flops: float32 `(batch,)`: FLOPs of the nodes that ran.
        soft_executed_flops: with straight-through controllers, the same
            FLOPs as a differentiable function of their relaxed decisions
            (equal in value); `None` otherwise.
        soft_executed: with straight-through controllers, `{node: float
            (batch,)}`: each node's relaxed execution indicator (equal in
            value to `executed`, differentiable in the decisions), so that
            costs other than FLOPs (measured latency) can be relaxed too;
            `None` otherwise.

    Example:

    ```python
    trace = model.trace(images[:4])  # or keras_d2nn.execute(...)
    trace.outputs["logits"].shape  # (4, 10)
    trace.decisions["gate"]        # 0 (stop) or 1 (high) per example
    trace.executed["high"]         # True where the gate chose "high"
    trace.executed_flops           # FLOPs of what ran, per example
    ```
    """

    outputs: dict
    values: dict
    executed: dict
    decisions: dict
    log_probs: dict
    entropies: dict
    logits: dict
    executed_flops: tf.Tensor
    soft_executed_flops: object = None
    soft_executed: object = None


class Decision(typing.NamedTuple):
    """What a controller decided for the examples it ran on.

    A named tuple, so that it passes through `tf.cond` and gather/scatter.

    Attributes:
        action: int32 `(batch,)`.
        log_prob: float32 `(batch,)`, 0 without statistics.
        entropy: float32 `(batch,)`, 0 without statistics.
        logits: float32 `(batch, num_logits)`, the controller's raw outputs.
        gate: straight-through controllers only: the relaxed one-hot
            decision `(batch, num_actions)`, differentiable; `None` else.

    Example:

    ```python
    controller = keras_d2nn.Controller(2)
    logits = controller(tf.random.normal([4, 8]))
    decision = keras_d2nn.execution.Decision(*controller.decide(logits),
                                             logits=logits)
    decision.action, decision.gate  # the argmax per example, None
    ```
    """

    action: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor
    logits: tf.Tensor
    gate: typing.Optional[tf.Tensor] = None


def empty_trace(plan):
    """The trace of a batch of no example, made without running a node.

    A zero-size batch cannot be run through the layers: oneDNN's eager
    `Conv2D` returns a wrong shape for it and some controllers fail on it.

    Example: `empty_trace(model.plan).outputs`.
    """

    def empty(node):
        spec = plan.specs[node]
        return tf.zeros([0] + list(spec.shape[1:]), spec.dtype)

    nodes = [n.name for n in plan.order]
    controllers = plan.controllers
    zeros = tf.zeros([0], tf.float32)
    # As `execute`: a value for every node but the controllers.
    return ExecutionTrace(
        outputs={out: empty(node) for out, node in plan.outputs},
        values={n: empty(n) for n in nodes if n not in controllers},
        executed={n: tf.zeros([0], tf.bool) for n in nodes},
        decisions={q: tf.zeros([0], tf.int32) for q in controllers},
        log_probs={q: zeros for q in controllers},
        entropies={q: zeros for q in controllers},
        logits={
            q: tf.zeros([0, plan.nodes[q].layer.num_logits])
            for q in controllers
        },
        executed_flops=zeros,
    )


class SubBatch(typing.NamedTuple):
    """What a conditional node computed on the examples that reached it,
    before its outputs are scattered back into the full batch.

    Attributes:
        indices: int32 `(rows,)`: the example (row of the full batch) of
            each row. When no example reached the node it holds one
            placeholder row (example 0, output zeros): see `_select`.
        count: int32 scalar: how many rows are real examples.
        outputs: the node's outputs on those rows.

    A child that reads only nodes of one sub-batch runs on it directly
    (or on a subset of its rows): the examples are carried from node to
    node and scattered only where a full-batch value is read.
    """

    indices: tf.Tensor
    count: tf.Tensor
    outputs: object


def _any(masks):
    """Element-wise OR of bool tensors `(batch,)`."""
    if len(masks) == 1:
        return masks[0]
    return tf.reduce_any(tf.stack(masks), axis=0)


def _select(mask, rows):
    """Positions where `mask` (over `rows` rows) holds, and their count.

    No tensor handed to a node has zero size (but in a batch of no
    example): when the mask holds nowhere, one placeholder row (position
    0) is selected; the branch that skips the node returns one row of
    zeros for it, scattered onto an example whose value is zero anyway
    (no example reached the node). LiteRT prepares both branches of a
    `tf.cond` with its inputs' shapes, and XNNPACK, its default delegate,
    cannot prepare a zero-size tensor: without the placeholder, a batched
    LiteRT model fails when a branch gets no example.
    """
    positions = tf.cast(tf.where(mask)[:, 0], tf.int32)
    count = tf.size(positions)
    # [0] when the mask holds nowhere, else []; [] too when there is no
    # row at all (a batch of no example has no row 0).
    placeholder = tf.zeros(
        [tf.minimum(tf.maximum(1 - count, 0), rows)], tf.int32
    )
    return tf.concat([positions, placeholder], axis=0), count


def _run_rows(fn, sub_args, count, empty_outputs):
    """`fn(sub_args)` when `count > 0`, else zeros with as many rows as
    `sub_args` (the placeholder row, or none).

    `empty_outputs()` makes zero-size tensors with the structure of `fn`'s
    outputs. It is called inside the branch: a constant captured from
    outside becomes a branch input, and the LiteRT converter then fails to
    legalise convolutions in the other branch.
    """

    def skipped():
        rows = tf.shape(sub_args[0])[:1] if sub_args else count[None]
        return _map_tensors(
            lambda e: tf.zeros(tf.concat([rows, e.shape[1:]], 0), e.dtype),
            empty_outputs(),
        )

    return tf.cond(count > 0, lambda: fn(sub_args), skipped)


def _gather_run(fn, mask, args, batch_size, empty_outputs):
    """Runs `fn` on the examples of the full batch where `mask` holds."""
    indices, count = _select(mask, batch_size)
    sub_args = [tf.gather(a, indices) for a in args]
    outputs = _run_rows(fn, sub_args, count, empty_outputs)
    return SubBatch(indices, count, outputs)


def _run_carried(fn, parent, local_mask, data, extras, empty_outputs):
    """Runs `fn` on rows of `parent` (a `SubBatch`): all of them when
    `local_mask` is None, else those where it holds. `data` are the node's
    inputs as rows of `parent`; `extras`, full-batch tensors (a forced
    decision, exploration noise), are gathered by example."""
    if local_mask is None:
        indices, count, sub_data = parent.indices, parent.count, list(data)
    else:
        positions, count = _select(local_mask, tf.size(parent.indices))
        indices = tf.gather(parent.indices, positions)
        sub_data = [tf.gather(d, positions) for d in data]
    sub_args = sub_data + [tf.gather(e, indices) for e in extras]
    outputs = _run_rows(fn, sub_args, count, empty_outputs)
    return SubBatch(indices, count, outputs)


def _scatter(sub, batch_size):
    """The full-batch tensors of a `SubBatch`: zeros where no row is."""
    scatter_at = sub.indices[:, None]

    def scatter(rows):
        shape = tf.concat([[batch_size], tf.shape(rows)[1:]], axis=0)
        full = tf.scatter_nd(scatter_at, rows, shape)
        # Restate the static feature shape with an op (set_shape is lost
        # on conversion, EnsureShape is not a LiteRT builtin): LiteRT
        # cannot legalise a convolution whose input has unknown rank.
        if rows.shape[1:].is_fully_defined():
            full = tf.reshape(full, [-1] + list(rows.shape[1:]))
        return full

    return _map_tensors(scatter, sub.outputs)


def _run_single(fn, mask, args, empty_outputs):
    """Batch of one (static shape): `tf.cond` on the example's mask, no
    gather/scatter, so no tensor ever has zero size (LiteRT's XNNPACK
    delegate cannot prepare zero-size tensors) and shapes stay static."""

    def skipped():
        return _map_tensors(
            lambda e: tf.zeros([1] + list(e.shape[1:]), e.dtype),
            empty_outputs(),
        )

    return tf.cond(mask[0], lambda: fn(args), skipped)


def _run_masked(fn, mask, args):
    outputs = fn(args)

    def overwrite(full):
        keep = tf.reshape(mask, [-1] + [1] * (len(full.shape) - 1))
        return tf.where(keep, full, tf.zeros_like(full))

    return _map_tensors(overwrite, outputs)


def _map_tensors(fn, structure):
    """`tf.nest.map_structure` that leaves `None` fields (a `Decision`
    without a gate) as they are."""
    return tf.nest.map_structure(
        lambda t: None if t is None else fn(t), structure
    )


def _broadcast_mask(mask, value):
    return tf.reshape(mask, [-1] + [1] * (len(value.shape) - 1))


def _masked_value(value, mask, default=0.0):
    """`value` where `mask` holds, `default` elsewhere."""
    fill = tf.fill(tf.shape(value), tf.cast(default, value.dtype))
    return tf.where(_broadcast_mask(mask, value), value, fill)


def execute(
    plan,
    inputs,
    *,
    training=False,
    mode="routed",
    decisions=None,
    straight_through=None,
    statistics=True,
):
    """Runs `plan` on a batch and returns an `ExecutionTrace`.

    Args:
        plan: a `graph.Plan`.
        inputs: `{input node name: tensor}`, batch first.
        training: passed to the layers; controllers sample when True.
        mode: `"routed"` or `"masked"` (see the module docstring).
        decisions: optional `{controller: int tensor (batch,)}` forcing the
            decisions of those controllers (where they run).
        straight_through: optional `{controller: temperature}`: these
            controllers decide by straight-through Gumbel-softmax, and each
            node's output is multiplied by its relaxed execution indicator
            (1 or 0 in value, differentiable in the decisions). Masked mode
            only: the gradient needs every branch's output.
        statistics: if False, controllers only take their argmax (or
            forced) decisions and report zero log-probabilities and
            entropies: the inference path of `call` and of exported models,
            free of TFP ops (which would need LiteRT's Flex delegate).

    Example:

    ```python
    trace = keras_d2nn.execute(model.plan, {"image": images}, mode="routed")
    trace.decisions["gate"], trace.executed_flops
    ```
    """
    if mode not in MODES:
        raise ValueError(
            f"`mode` should be one of {MODES}. Received: mode={mode!r}"
        )
    if training and not statistics:
        raise ValueError(
            "Training needs the controllers' log-probabilities: "
            "statistics=False is for inference only."
        )
    if straight_through and mode != "masked":
        raise ValueError(
            "Straight-through decisions need every branch computed: use "
            f"mode='masked'. Received: mode={mode!r}"
        )
    run = _Run(
        plan,
        inputs,
        training=training,
        mode=mode,
        forced=dict(decisions or {}),
        straight_through=dict(straight_through or {}),
        statistics=statistics,
    )
    for node in plan.order:
        _RUNNERS[node.kind](run, node)
    return run.trace()


class _Run:
    """The state of one execution: what each node produced, for which
    examples, and what the controllers decided."""

    def __init__(
        self,
        plan,
        inputs,
        *,
        training,
        mode,
        forced,
        straight_through,
        statistics,
    ):
        self.plan = plan
        self.inputs = inputs
        self.training = training
        self.mode = mode
        self.forced = forced
        self.straight_through = straight_through
        self.statistics = statistics
        first = next(iter(inputs.values()))
        self.static_batch_size = first.shape[0]
        self.batch_size = tf.shape(first)[0]
        self.all_true = tf.ones([self.batch_size], dtype=tf.bool)
        self.values = {}
        self.executed = {}
        # {node: SubBatch} of conditional nodes run on gathered examples.
        self.sub = {}
        # Nodes every example reaches whatever the controllers decide: run
        # on the whole batch directly, without gather/scatter.
        self.always = {}
        self.decisions = {}  # {controller: Decision}
        # Straight-through only: relaxed execution indicators and gates.
        self.soft = {}
        self.flops = tf.zeros([self.batch_size], dtype=tf.float32)
        # Merges of alternative crops, run as one indexed crop (routed
        # mode: the masked mode computes every branch by definition).
        self.crop_groups = (
            indexed_crop.crop_groups(plan) if mode == "routed" else {}
        )
        self.crop_group_of = {
            member: group
            for group in self.crop_groups.values()
            for member in group.members
        }

    def indexed(self, group):
        """Whether `group`'s crops run as one indexed crop at its merge:
        its controller decides, and its image exists, for every example."""
        return self.always[group.controller] and self.always[group.source]

    def reach(self, node):
        """Marks which examples reach `node`: any data parent ran and every
        controlling controller picked one of the node's actions."""
        # One parent or one action needs no reduction: fewer ops, which
        # count at batch 1 in LiteRT (a graph of 25 glimpse branches).
        mask = None
        if node.inputs:
            mask = _any([self.executed[p] for p in node.inputs])
        for controller, actions in node.control.items():
            chosen = self.decisions[controller].action
            picked = _any([tf.equal(chosen, a) for a in actions])
            mask = picked if mask is None else tf.logical_and(mask, picked)
        if mask is None:
            mask = self.all_true
        self.always[node.name] = (
            not node.control
            and (not node.inputs or any(self.always[p] for p in node.inputs))
        ) or self._covers_every_action(node)
        if self.always[node.name]:
            mask = self.all_true
        self.executed[node.name] = mask
        if self.straight_through:
            self.soft[node.name] = self._soft_indicator(node)
        if self.plan.flops[node.name]:
            self.flops += self.plan.flops[node.name] * tf.cast(mask, tf.float32)
        return mask

    def _covers_every_action(self, node):
        """Whether `node`, with no controller of its own, reads alternatives
        that together cover every action of one controller deciding for
        every example, each alternative's data parents running on every
        example: then every example reaches it (the attention D2NN's
        merge of its crops), and it runs on the whole batch, with no
        gather or condition. A controller's action is always one of its
        actions (`route` refuses forced decisions out of range)."""
        if node.control or not node.inputs:
            return False
        controllers, covered = set(), set()
        for name in node.inputs:
            parent = self.plan.nodes[name]
            if len(parent.control) != 1 or not all(
                self.always[p] for p in parent.inputs
            ):
                return False
            ((controller, actions),) = parent.control.items()
            controllers.add(controller)
            covered.update(actions)
        if len(controllers) != 1:
            return False
        (controller,) = controllers
        every = set(range(len(self.plan.nodes[controller].actions)))
        return self.always[controller] and covered == every

    def arguments(self, node):
        """The node's inputs, with edge defaults where a parent did not
        run."""
        return [
            _masked_value(self.values[p], self.executed[p], node.defaults[p])
            if p in node.defaults
            else self.values[p]
            for p in node.inputs
        ]

    def call(self, node, fn, empty, extras=()):
        """Runs `fn(inputs + extras)` on the examples that reach `node`, as
        the mode says, and returns full-batch outputs; `empty()` makes
        zero-size outputs of `fn`'s structure. `extras` are full-batch
        tensors that travel with the inputs (a controller's forced
        decisions, exploration noise)."""
        mask = self.executed[node.name]
        if self.mode == "masked":
            return _run_masked(fn, mask, self.arguments(node) + list(extras))
        if self.always[node.name]:
            return fn(self.arguments(node) + list(extras))
        if self.static_batch_size == 1:
            return _run_single(
                fn, mask, self.arguments(node) + list(extras), empty
            )
        parent = self._carrier(node)
        if parent is None:
            sub = _gather_run(
                fn,
                mask,
                self.arguments(node) + list(extras),
                self.batch_size,
                empty,
            )
        else:
            # The same examples flow on: no gather from (or scatter into)
            # the full batch. A controller of the node narrows them.
            local_mask = (
                tf.gather(mask, parent.indices) if node.control else None
            )
            data = [self.sub[p].outputs for p in node.inputs]
            sub = _run_carried(fn, parent, local_mask, data, extras, empty)
        self.sub[node.name] = sub
        # Unused full-batch values (a node read only by nodes carried on
        # its sub-batch) are pruned from a traced graph.
        return _scatter(sub, self.batch_size)

    def _carrier(self, node):
        """The `SubBatch` `node` can run on, or None: every input comes
        from the same sub-batch and none has an edge default (which would
        bring examples where the parent did not run)."""
        parents = {id(self.sub.get(p)) for p in node.inputs}
        first = self.sub.get(node.inputs[0]) if node.inputs else None
        if first is None or len(parents) != 1 or node.defaults:
            return None
        return first

    def _soft_indicator(self, node):
        """Float (batch,) equal to the node's execution mask, differentiable
        in the straight-through gates: data part = max over data parents,
        control part = the selecting actions' gates of each controller."""
        soft = self.soft
        value = (
            tf.reduce_max(tf.stack([soft[p] for p in node.inputs]), axis=0)
            if node.inputs
            else tf.ones([self.batch_size], tf.float32)
        )
        for controller, actions in node.control.items():
            decision = self.decisions[controller]
            if decision.gate is not None:
                picked = tf.add_n([decision.gate[:, a] for a in actions])
            else:
                picked = (
                    tf.add_n(
                        [
                            tf.cast(tf.equal(decision.action, a), tf.float32)
                            for a in actions
                        ]
                    )
                    * soft[controller]
                )
            value = value * picked
        return value

    def trace(self):
        plan = self.plan
        soft_flops = None
        if self.straight_through:
            soft_flops = tf.add_n(
                [tf.zeros([self.batch_size], tf.float32)]
                + [
                    plan.flops[n.name] * self.soft[n.name]
                    for n in plan.order
                    if plan.flops[n.name]
                ]
            )
        decisions = self.decisions
        return ExecutionTrace(
            outputs={out: self.values[name] for out, name in plan.outputs},
            values=dict(self.values),
            executed=self.executed,
            decisions={q: d.action for q, d in decisions.items()},
            log_probs={q: d.log_prob for q, d in decisions.items()},
            entropies={q: d.entropy for q, d in decisions.items()},
            logits={q: d.logits for q, d in decisions.items()},
            executed_flops=self.flops,
            soft_executed_flops=soft_flops,
            soft_executed=dict(self.soft) if self.straight_through else None,
        )


def _run_input(run, node):
    run.values[node.name] = run.inputs[node.name]
    run.executed[node.name] = run.all_true
    run.always[node.name] = True
    run.soft[node.name] = tf.ones([run.batch_size], tf.float32)


def _run_dummy(run, node):
    """A node with no computation: passes its input on where it ran."""
    mask = run.reach(node)
    args = run.arguments(node)
    if args:
        run.values[node.name] = _masked_value(args[0], mask)


def _run_merge(run, node):
    """Merges branches; without a combining layer, each example takes the
    value of the (one) parent that ran for it."""
    if node.layer is not None:
        return _run_layer(run, node)
    run.reach(node)
    group = run.crop_groups.get(node.name)
    if group is not None and run.indexed(group):
        value = indexed_crop.crop(
            run.values[group.source],
            run.decisions[group.controller].action,
            group,
        )
        run.values[node.name] = value
        # Each crop's own value, for the trace (pruned when nothing reads
        # it).
        for member in group.members:
            run.values[member] = _masked_value(value, run.executed[member])
        return
    args = run.arguments(node)
    if len(args) > 1 and _exclusive_alternatives(run.plan, node):
        # At most one parent ran for each example, and the others hold
        # zeros there: one sum instead of a select per parent (25 for the
        # attention D2NN's crops, each an op at batch 1 in LiteRT).
        run.values[node.name] = tf.add_n(args)
        return
    merged = tf.zeros_like(args[0])
    for parent, value in zip(node.inputs, args):
        merged = tf.where(
            _broadcast_mask(run.executed[parent], value), value, merged
        )
    run.values[node.name] = merged


def _exclusive_alternatives(plan, node):
    """Whether `node`'s parents are alternatives of one controller
    (disjoint action sets), so that at most one of them runs for an
    example, and none brings an edge default (a value where it did not
    run)."""
    if node.defaults:
        return False
    controllers, seen = set(), set()
    for name in node.inputs:
        control = plan.nodes[name].control
        if len(control) != 1:
            return False
        ((controller, actions),) = control.items()
        if seen & set(actions):
            return False
        controllers.add(controller)
        seen.update(actions)
    return len(controllers) == 1


def _run_layer(run, node):
    run.reach(node)
    group = run.crop_group_of.get(node.name)
    if group is not None and run.indexed(group):
        return  # cropped at the merge, with the group's other crops
    layer, training = node.layer, run.training
    spec = run.plan.specs[node.name]

    def fn(args):
        call_args = args[0] if len(args) == 1 else list(args)
        return layer(call_args, training=training)

    def empty():
        return tf.zeros([0] + list(spec.shape[1:]), dtype=spec.dtype)

    out = run.call(node, fn, empty)
    if run.straight_through:
        out = out * _broadcast_mask(run.soft[node.name], out)
    run.values[node.name] = out


def _run_controller(run, node):
    mask = run.reach(node)
    name = node.name
    forced = run.forced.get(name)
    temperature = run.straight_through.get(name)
    # Extra arguments travel with the inputs, so that routed execution
    # gathers them for the examples that reach the controller.
    extras = []
    if forced is not None:
        # 0 where the controller does not run (masked mode still computes
        # those rows, and a log-probability of action -1 fails in TFP).
        extras.append(tf.where(mask, tf.cast(forced, tf.int32), 0))
    noise = None
    if run.training and (forced is None or temperature is not None):
        # Drawn for the whole batch before routing: an example's draw does
        # not depend on which other examples reach the controller (see
        # execution/sampling.py).
        noise = node.layer.exploration_noise(run.batch_size)
        extras.append(noise)
    fn = _controller_fn(
        node,
        run.training,
        forced is not None,
        temperature,
        run.statistics,
        noise is not None,
    )
    num_logits = node.layer.num_logits
    num_actions = len(node.actions)

    def empty():
        return Decision(
            tf.zeros([0], tf.int32),
            tf.zeros([0], tf.float32),
            tf.zeros([0], tf.float32),
            tf.zeros([0, num_logits], tf.float32),
            None
            if temperature is None
            else tf.zeros([0, num_actions], tf.float32),
        )

    decision = run.call(node, fn, empty, extras)
    # Scattering leaves 0 where the controller did not run; -1 makes "did
    # not decide" distinct from action 0.
    run.decisions[name] = decision._replace(
        action=tf.where(mask, decision.action, -tf.ones_like(decision.action))
    )


_RUNNERS = {
    "input": _run_input,
    "dummy": _run_dummy,
    "merge": _run_merge,
    "f": _run_layer,
    "q": _run_controller,
}


def _controller_fn(
    node, training, forced, temperature=None, statistics=True, noisy=False
):
    """A function computing a controller's `Decision` from its arguments.

    When `forced`, the forced actions were appended to the arguments; then,
    when `noisy`, the exploration noise.
    """
    controller = node.layer

    def fn(args):
        action = noise = None
        if noisy:
            args, noise = args[:-1], args[-1]
        if forced:
            args, action = args[:-1], args[-1]
        call_args = args[0] if len(args) == 1 else list(args)
        logits = controller(call_args, training=training)
        raw = tf.cast(logits, tf.float32)
        if temperature is not None:
            action, log_prob, entropy, gate = controller.gumbel_decide(
                logits, temperature, action=action, noise=noise
            )
            return Decision(
                action,
                tf.cast(log_prob, tf.float32),
                tf.cast(entropy, tf.float32),
                raw,
                gate,
            )
        if not statistics:
            if action is None:
                action = controller.greedy_action(logits)
            zeros = tf.zeros(tf.shape(logits)[:1], tf.float32)
            return Decision(tf.cast(action, tf.int32), zeros, zeros, raw)
        action, log_prob, entropy = controller.decide(
            logits, training=training, action=action, noise=noise
        )
        return Decision(
            action,
            tf.cast(log_prob, tf.float32),
            tf.cast(entropy, tf.float32),
            raw,
        )

    return fn
