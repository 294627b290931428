"""Running a validated plan on a batch: which examples reach which node.

Two modes produce the same values (tested):

- `"routed"` (the default, used in training and serving): for each node,
  the indices of the examples that reach it are gathered, the node runs on
  that sub-batch only, and its output is scattered back into a full-batch
  tensor. The call sits in a `tf.cond` on the sub-batch size, so a node that
  no example reaches does not run at all (no kernels, no variable updates,
  no batch-norm statistics from an empty batch). Nodes that every example
  reaches whatever the controllers decide run on the whole batch without
  gather/scatter; with a static batch of one, conditional nodes use a
  `tf.cond` on the example's decision and no gather/scatter at all.
- `"masked"` (reference only): every node runs on the whole batch and the
  examples that should not have reached it are overwritten. This is what
  mask-based dynamic networks do; it saves nothing.

Only ops that convert to LiteRT builtins are used on the inference path
(`tf.where`, `tf.gather`, `tf.scatter_nd` with int32 indices, `tf.cond`).
"""

import typing

import tensorflow as tf

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


def _gather_run_scatter(fn, mask, args, batch_size, empty_outputs):
    """Runs `fn` on the examples where `mask` holds; scatters the results.

    `empty_outputs()` makes, for the skipped case, zero-size tensors with
    the same structure as `fn`'s outputs. It is called inside the branch:
    a zero-size constant captured from outside becomes a branch input, and
    the LiteRT converter then fails to legalise convolutions in the other
    branch.
    """
    indices = tf.cast(tf.where(mask)[:, 0], tf.int32)
    sub_args = [tf.gather(a, indices) for a in args]
    outputs = tf.cond(
        tf.size(indices) > 0,
        lambda: fn(sub_args),
        empty_outputs,
    )
    scatter_at = indices[:, None]

    def scatter(sub):
        shape = tf.concat([[batch_size], tf.shape(sub)[1:]], axis=0)
        full = tf.scatter_nd(scatter_at, sub, shape)
        # Restate the static feature shape with an op (set_shape is lost
        # on conversion, EnsureShape is not a LiteRT builtin): LiteRT
        # cannot legalise a convolution whose input has unknown rank.
        if sub.shape[1:].is_fully_defined():
            full = tf.reshape(full, [-1] + list(sub.shape[1:]))
        return full

    return tf.nest.map_structure(scatter, outputs)


def _run_single(fn, mask, args, empty_outputs):
    """Batch of one (static shape): `tf.cond` on the example's mask, no
    gather/scatter, so no tensor ever has zero size (LiteRT's XNNPACK
    delegate cannot prepare zero-size tensors) and shapes stay static."""

    def skipped():
        return tf.nest.map_structure(
            lambda e: tf.zeros([1] + list(e.shape[1:]), e.dtype),
            empty_outputs(),
        )

    return tf.cond(mask[0], lambda: fn(args), skipped)


def _run_masked(fn, mask, args):
    outputs = fn(args)

    def overwrite(full):
        keep = tf.reshape(mask, [-1] + [1] * (len(full.shape) - 1))
        return tf.where(keep, full, tf.zeros_like(full))

    return tf.nest.map_structure(overwrite, outputs)


def _empty_like_spec(spec):
    return tf.zeros([0] + list(spec.shape[1:]), dtype=spec.dtype)


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
    trace = execute(model.plan, {"image": images}, mode="routed")
    trace.decisions["gate"], trace.executed_flops
    ```
    """
    if mode not in MODES:
        raise ValueError(f"`mode` should be one of {MODES}. Received: {mode!r}")
    if training and not statistics:
        raise ValueError(
            "Training needs the controllers' log-probabilities: "
            "statistics=False is for inference only."
        )
    decisions = dict(decisions or {})
    straight_through = dict(straight_through or {})
    if straight_through and mode != "masked":
        raise ValueError(
            "Straight-through decisions need every branch computed: use "
            f"mode='masked'. Received: mode={mode!r}"
        )
    first = next(iter(inputs.values()))
    batch_size = tf.shape(first)[0]
    all_true = tf.ones([batch_size], dtype=tf.bool)

    values, executed = {}, {}
    # Nodes every example reaches whatever the controllers decide: run on
    # the whole batch directly, without gather/scatter.
    always = {}
    chosen, log_probs, entropies, logits = {}, {}, {}, {}
    flops = tf.zeros([batch_size], dtype=tf.float32)
    # Relaxed execution indicators, kept only with straight-through.
    soft, gates = {}, {}
    ones = tf.ones([batch_size], dtype=tf.float32)

    for node in plan.order:
        name = node.name
        if node.kind == "input":
            values[name], executed[name] = inputs[name], all_true
            always[name] = True
            soft[name] = ones
            continue

        mask = all_true
        if node.inputs:
            mask = tf.reduce_any(
                tf.stack([executed[p] for p in node.inputs]), axis=0
            )
        for controller, actions in node.control.items():
            picked = tf.reduce_any(
                tf.stack([tf.equal(chosen[controller], a) for a in actions]),
                axis=0,
            )
            mask = tf.logical_and(mask, picked)
        always[name] = not node.control and (
            not node.inputs or any(always[p] for p in node.inputs)
        )
        if always[name]:
            mask = all_true
        executed[name] = mask
        if straight_through:
            soft[name] = _soft_indicator(node, soft, gates, chosen)

        args = [
            _masked_value(values[p], executed[p], node.defaults[p])
            if p in node.defaults
            else values[p]
            for p in node.inputs
        ]

        if node.kind == "dummy":
            if args:
                values[name] = _masked_value(args[0], mask)
            continue
        if node.kind == "merge" and node.layer is None:
            merged = tf.zeros_like(args[0])
            for parent, value in zip(node.inputs, args):
                merged = tf.where(
                    _broadcast_mask(executed[parent], value), value, merged
                )
            values[name] = merged
            continue

        spec = plan.specs[name]
        if node.kind == "q":
            forced = decisions.get(name)
            temperature = straight_through.get(name)
            # Drawn for the whole batch before routing and gathered with
            # the inputs: an example's draw does not depend on which other
            # examples reach the controller (see execution/sampling.py).
            noise = None
            if training and (forced is None or temperature is not None):
                noise = node.layer.exploration_noise(batch_size)
            fn = _controller_fn(
                node,
                training,
                forced,
                temperature,
                statistics,
                noise is not None,
            )
            num_logits = node.layer.num_logits

            def empty(num_logits=num_logits):
                return (
                    tf.zeros([0], tf.int32),
                    tf.zeros([0], tf.float32),
                    tf.zeros([0], tf.float32),
                    tf.zeros([0, num_logits], tf.float32),
                )

            q_args = list(args)
            if forced is not None:
                # -1 ("did not decide", as a trace reports it) where the
                # controller does not run: masked mode still computes those
                # rows, and a log-probability of action -1 fails in TFP.
                q_args.append(tf.where(mask, tf.cast(forced, tf.int32), 0))
            if noise is not None:
                q_args.append(noise)
        else:
            fn = _layer_fn(node, training)

            def empty(spec=spec):
                return _empty_like_spec(spec)

            q_args = args

        if mode == "routed" and always[name]:
            out = fn(q_args)
        elif mode == "routed" and first.shape[0] == 1:
            out = _run_single(fn, mask, q_args, empty)
        elif mode == "routed":
            out = _gather_run_scatter(fn, mask, q_args, batch_size, empty)
        else:
            out = _run_masked(fn, mask, q_args)

        if node.kind == "q" and name in straight_through:
            out, gates[name] = out[:4], out[4]
        elif straight_through and node.kind != "q":
            out = out * tf.reshape(
                soft[name], [-1] + [1] * (len(out.shape) - 1)
            )
        if node.kind == "q":
            action, log_prob, entropy, raw = out
            # Scattering leaves 0 where the controller did not run; -1 makes
            # "did not decide" distinct from action 0.
            chosen[name] = tf.where(mask, action, -tf.ones_like(action))
            log_probs[name] = tf.cast(log_prob, tf.float32)
            entropies[name] = tf.cast(entropy, tf.float32)
            logits[name] = tf.cast(raw, tf.float32)
        values[name] = out if node.kind != "q" else None

        if plan.flops[name]:
            flops += plan.flops[name] * tf.cast(mask, tf.float32)

    soft_flops = None
    if straight_through:
        soft_flops = tf.add_n(
            [ones * 0.0]
            + [
                plan.flops[n.name] * soft[n.name]
                for n in plan.order
                if plan.flops[n.name]
            ]
        )
    outputs = {out: values[node_name] for out, node_name in plan.outputs}
    return ExecutionTrace(
        outputs=outputs,
        values={k: v for k, v in values.items() if v is not None},
        executed=executed,
        decisions=chosen,
        log_probs=log_probs,
        entropies=entropies,
        logits=logits,
        executed_flops=flops,
        soft_executed_flops=soft_flops,
    )


def _soft_indicator(node, soft, gates, chosen):
    """Float (batch,) equal to the node's execution mask, differentiable in
    the straight-through gates: data part = max over data parents,
    control part = the selecting actions' gates of each controller."""
    value = (
        tf.reduce_max(tf.stack([soft[p] for p in node.inputs]), axis=0)
        if node.inputs
        else tf.ones_like(next(iter(soft.values())))
    )
    for controller, actions in node.control.items():
        if controller in gates:
            picked = tf.add_n([gates[controller][:, a] for a in actions])
        else:
            picked = (
                tf.add_n(
                    [
                        tf.cast(tf.equal(chosen[controller], a), tf.float32)
                        for a in actions
                    ]
                )
                * soft[controller]
            )
        value = value * picked
    return value


def _layer_fn(node, training):
    layer = node.layer

    def fn(args):
        call_args = args[0] if len(args) == 1 else list(args)
        return layer(call_args, training=training)

    return fn


def _controller_fn(
    node, training, forced, temperature=None, statistics=True, noisy=False
):
    """A function computing a controller's (action, log_prob, entropy,
    logits).

    When `forced` is given, it was appended to the arguments so that it is
    gathered with them; then, when `noisy`, the exploration noise.
    """
    controller = node.layer

    def fn(args):
        action = noise = None
        if noisy:
            args, noise = args[:-1], args[-1]
        if forced is not None:
            args, action = args[:-1], args[-1]
        call_args = args[0] if len(args) == 1 else list(args)
        logits = controller(call_args, training=training)
        if temperature is not None:
            action, log_prob, entropy, gate = controller.gumbel_decide(
                logits, temperature, action=action, noise=noise
            )
            return (
                action,
                log_prob,
                entropy,
                tf.cast(logits, tf.float32),
                gate,
            )
        if not statistics:
            if action is None:
                action = controller.greedy_action(logits)
            zeros = tf.zeros(tf.shape(logits)[:1], tf.float32)
            return (
                tf.cast(action, tf.int32),
                zeros,
                zeros,
                tf.cast(logits, tf.float32),
            )
        decision = controller.decide(
            logits, training=training, action=action, noise=noise
        )
        return decision + (tf.cast(logits, tf.float32),)

    return fn
