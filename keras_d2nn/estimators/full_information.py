"""Full-information training of controllers: every action's reward is
known for every example, so no decision needs to be sampled to learn."""

import itertools

import tensorflow as tf

from keras_d2nn.api_export import keras_d2nn_export
from keras_d2nn.estimators import budget
from keras_d2nn.estimators.base import Estimator
from keras_d2nn.estimators.q_learning import next_controllers

OBJECTIVES = ("value", "expected")
DOWNSTREAM = ("auto", "best", "greedy")
UNIFORM = "uniform"


def _check_reward_of(batch):
    if batch.reward_of is None:
        raise ValueError(
            "FullInformation needs `PolicyBatch.reward_of` (the reward "
            "of forced decisions); D2NNModel.train_step provides it."
        )


@keras_d2nn_export
class FullInformation(Estimator):
    """Learns each controller from the reward of **every** action.

    REINFORCE sees, per example, the reward of the one action it sampled.
    Here each step runs the batch once more per joint decision of the
    controllers this estimator trains, in inference mode with those
    decisions forced (`PolicyBatch.reward_of`), so the reward `r(a)` of
    every action `a` is known for every example. For a controller with K
    actions that is K extra forward passes; for several controllers, one
    per joint decision (`prod K_q`, at most `max_joint_decisions`).

    Objectives:

    - `"value"`: the controller's logits are per-action values, regressed
      (squared error, all actions at once) to the per-action rewards;
      inference takes `Controller.greedy_action`, the argmax. With
      `centered=True` (default) values and rewards are both taken relative
      to their mean over the actions before the squared error: only the
      differences between actions decide the argmax, and the part shared
      by every action (how hard the example is) no longer competes for
      the controller's capacity. A Bernoulli
      gate (one logit, open when > 0) regresses its logit to
      `r(open) - r(closed)`, the same argmax read. With several
      controllers, the target of a controller's action is the reward with
      the controllers upstream (and in parallel) at the training decisions
      and, downstream, either the best decisions (`downstream="best"`, as
      Q-learning's `max`: one forward pass per joint decision) or the
      decisions the downstream controllers take themselves, their argmax
      (`downstream="greedy"`: one pass per action of each controller,
      `sum_q K_q`, so the chain's 3 controllers of 4 actions cost 12 passes
      a step, not 64). `"auto"` (default) is `"best"` while the joint
      decisions number at most `max_joint_decisions`, else `"greedy"`.
    - `"expected"`: maximises the exact expected reward
      `sum_a pi(a | s) r(a)` (over joint decisions: the product of the
      controllers' probabilities), `pi = Controller.action_probabilities`
      without exploration, plus `entropy_weight` times the entropy.

    Modules: `module_routing` forces decisions in the training pass, so
    that modules train on the examples of those routes whatever the
    controllers would decide. `"continue"` forces every early exit the
    graph declares (`Graph.early_exit`, declared by `high_low` and
    `cascade`) to continue: every stage and head trains on every example,
    as in the full static network a confidence-threshold exit runs on.
    (Masked execution, `needs_all_branches`, would not do this: it
    computes every branch but only the examples routed there get a
    gradient.) `"auto"` (default) is `"continue"` when the graph declares
    an exit for every controller trained here; else the actions the graph
    names in `graph.metadata["training_routing"]` (`{controller: action}`,
    e.g. the hierarchical model's `"all"` experts, or `"uniform"`, the
    chain's); else `"uniform"`: every
    controller's decision drawn uniformly at random, so that every version
    of every stage trains on a share of the examples and in every
    combination (the chain's widths, the hierarchical model's experts).
    `None` keeps the sampled decisions, as with the other estimators. A
    dict `{controller: action}` forces those actions.

    Args:
        objective: `"value"` or `"expected"`.
        entropy_weight: entropy bonus of the `"expected"` objective (>= 0).
        module_routing: `"auto"`, `"continue"`, `"uniform"`, `None` or a
            dict (above).
        max_joint_decisions: the largest number of joint decisions (forward
            passes per step) enumerated; more takes the greedy downstream
            targets (`"value"`) or raises a ValueError at `compile`
            (`"expected"`, or `downstream="best"`).
        downstream: `"auto"`, `"best"` or `"greedy"` (above).
        centered: `"value"` only: regress the values' deviations from
            their mean over actions to the rewards' (default True), or the
            values themselves to the rewards (False).

    Example:

    ```python
    model.compile("adam", loss, cost_weight=0.1,
                  estimator=keras_d2nn.FullInformation(objective="value"))
    model.fit(images, labels, epochs=1, verbose=0)
    ```
    """

    # Controllers that regress to every action's current reward follow a
    # change of the cost weight within a few steps: the multiplier can move
    # faster than for REINFORCE (measured in benchmarks/budget.py).
    budget_learning_rate = budget.FAST_LEARNING_RATE

    def __init__(
        self,
        objective="value",
        entropy_weight=0.0,
        module_routing="auto",
        max_joint_decisions=16,
        centered=True,
        downstream="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ValueError(
                f"`objective` should be one of {OBJECTIVES}. Received: "
                f"objective={objective!r}"
            )
        entropy_weight = float(entropy_weight)
        if not entropy_weight >= 0:
            raise ValueError(
                f"`entropy_weight` should be >= 0. Received: "
                f"entropy_weight={entropy_weight}"
            )
        if not (
            module_routing in (None, "auto", "continue", UNIFORM)
            or isinstance(module_routing, dict)
        ):
            raise ValueError(
                "`module_routing` should be 'auto', 'continue', 'uniform', "
                "None or a "
                "dict {controller: action}. Received: "
                f"module_routing={module_routing!r}"
            )
        if (
            isinstance(max_joint_decisions, bool)
            or not isinstance(max_joint_decisions, int)
            or max_joint_decisions < 2
        ):
            raise ValueError(
                "`max_joint_decisions` should be an int >= 2. Received: "
                f"max_joint_decisions={max_joint_decisions!r}"
            )
        if downstream not in DOWNSTREAM:
            raise ValueError(
                f"`downstream` should be one of {DOWNSTREAM}. Received: "
                f"downstream={downstream!r}"
            )
        if downstream == "greedy" and objective != "value":
            raise ValueError(
                "`downstream='greedy'` needs objective='value': the "
                "'expected' objective weighs every joint decision."
            )
        self.downstream = downstream
        self.objective = objective
        self.entropy_weight = entropy_weight
        self.module_routing = (
            dict(module_routing)
            if isinstance(module_routing, dict)
            else module_routing
        )
        self.max_joint_decisions = max_joint_decisions
        self.centered = bool(centered)
        self._downstream = {}
        self._greedy = False

    def configure(self, model, controllers):
        plan = model.plan
        joints = 1
        for q in controllers:
            joints *= len(plan.nodes[q].actions)
        self._greedy = self.downstream == "greedy" or (
            self.downstream == "auto"
            and self.objective == "value"
            and joints > self.max_joint_decisions
        )
        if joints > self.max_joint_decisions and not self._greedy:
            sizes = " x ".join(
                f"{len(plan.nodes[q].actions)} ({q})" for q in controllers
            )
            raise ValueError(
                f"FullInformation runs one forward pass per joint decision "
                f"of the controllers it trains: {sizes} = {joints}, above "
                f"max_joint_decisions={self.max_joint_decisions}. Raise the "
                "limit, or give it fewer controllers "
                "(compile(estimator={controller: ...})), or take the "
                "greedy downstream targets (objective='value', "
                "downstream='greedy')."
            )
        self._downstream = next_controllers(plan)
        self.training_routing = self._resolve_routing(model, controllers)

    def _resolve_routing(self, model, controllers):
        """`{controller: action index}` forced in the training pass."""
        plan, routing = model.plan, self.module_routing
        if routing is None:
            return {}
        if routing == UNIFORM:
            return self._uniform(plan, controllers)
        if isinstance(routing, dict):
            unknown = sorted(set(routing) - set(controllers))
            if unknown:
                raise ValueError(
                    f"`module_routing` names {unknown}, which are not "
                    f"controllers trained by this estimator: "
                    f"{list(controllers)}"
                )
            resolved = {}
            for q, action in routing.items():
                actions = plan.nodes[q].actions
                if isinstance(action, str):
                    if action not in actions:
                        raise ValueError(
                            f"`module_routing`: controller '{q}' has no "
                            f"action '{action}'; actions: {list(actions)}"
                        )
                    action = actions.index(action)
                if not 0 <= int(action) < len(actions):
                    raise ValueError(
                        f"`module_routing`: action {action} of '{q}' is not "
                        f"in 0..{len(actions) - 1}"
                    )
                resolved[q] = int(action)
            return resolved
        exits = {e.controller: e.proceed for e in plan.exits}
        missing = [q for q in controllers if q not in exits]
        declared = model.graph.metadata.get("training_routing", {})
        if missing and routing == "auto" and declared == UNIFORM:
            return self._uniform(plan, controllers)
        if missing and routing == "auto" and declared:
            # The graph names the route its modules train on.
            return self._resolve_declared(plan, controllers, declared)
        if missing:
            if routing == "auto":
                return self._uniform(plan, controllers)
            raise ValueError(
                f"`module_routing='continue'` needs the graph to declare an "
                f"early exit (Graph.early_exit) for every controller; "
                f"none for {missing}. Pass module_routing=None or a dict "
                "{controller: action}."
            )
        return {q: plan.nodes[q].actions.index(exits[q]) for q in controllers}

    @staticmethod
    def _resolve_declared(plan, controllers, declared):
        """`graph.metadata["training_routing"]` (`{controller: action
        name}`) for `controllers`; uniform for those it does not name."""
        resolved = FullInformation._uniform(plan, controllers)
        for q in controllers:
            if q in declared:
                actions = plan.nodes[q].actions
                if declared[q] not in actions:
                    raise ValueError(
                        f"graph.metadata['training_routing'] names action "
                        f"{declared[q]!r} of '{q}', which has actions "
                        f"{list(actions)}"
                    )
                resolved[q] = actions.index(declared[q])
        return resolved

    @staticmethod
    def _uniform(plan, controllers):
        """`{controller: probabilities}`: every action equally likely."""
        return {
            q: [1.0 / len(plan.nodes[q].actions)] * len(plan.nodes[q].actions)
            for q in controllers
        }

    # -- rewards ------------------------------------------------------------

    def action_rewards(self, batch):
        """Every joint decision and its per-example reward.

        Returns:
            `(joints, rewards)`: a list of tuples (one action per controller
            of `batch.controllers`) and a float32 `(batch, len(joints))`
            tensor (no gradient).

        Example:

        ```python
        estimator = keras_d2nn.FullInformation()
        batch = keras_d2nn.estimators.PolicyBatch(
            trace=model.trace(images[:8], training=True),
            controllers=("gate",), reward=tf.zeros([8]),
            greedy_reward=None, plan=model.plan,
            # The reward had the gate decided `decisions`: 1 for "high".
            reward_of=lambda decisions: tf.cast(decisions["gate"], "float32"))
        joints, rewards = estimator.action_rewards(batch)
        joints  # [(0,), (1,)]: the gate's "stop" and "high"
        rewards[0]  # [0.0, 1.0]
        ```
        """
        _check_reward_of(batch)
        controllers = batch.controllers
        sizes = [self._num_actions(batch, q) for q in controllers]
        joints = list(itertools.product(*[range(k) for k in sizes]))
        if len(joints) > self.max_joint_decisions:
            raise ValueError(
                f"FullInformation: {len(joints)} joint decisions of "
                f"{list(controllers)}, above max_joint_decisions="
                f"{self.max_joint_decisions}."
            )
        size = tf.shape(batch.reward)[0]
        columns = []
        for joint in joints:
            decisions = {
                q: tf.fill([size], tf.constant(a, tf.int32))
                for q, a in zip(controllers, joint)
            }
            columns.append(tf.cast(batch.reward_of(decisions), tf.float32))
        return joints, tf.stop_gradient(tf.stack(columns, axis=-1))

    @staticmethod
    def _num_actions(batch, q):
        return len(batch.plan.nodes[q].actions)

    @staticmethod
    def _controller(batch, q):
        return batch.plan.nodes[q].layer

    def value_targets(self, batch, joints, rewards):
        """Per controller, the target value of each action `(batch, K)`.

        The reward of the joint decision with this action, the other
        controllers that are not downstream at their decisions in the
        training trace (any, where they did not decide), and the best
        decisions downstream.

        Example:

        ```python
        estimator = keras_d2nn.FullInformation()
        estimator.configure(model, ("gate",))
        batch = keras_d2nn.estimators.PolicyBatch(
            trace=model.trace(images[:8], training=True),
            controllers=("gate",), reward=tf.zeros([8]),
            greedy_reward=None, plan=model.plan,
            reward_of=lambda decisions: tf.cast(decisions["gate"], "float32"))
        joints, rewards = estimator.action_rewards(batch)
        # One controller: the target of each action is its reward.
        targets = estimator.value_targets(batch, joints, rewards)["gate"]
        targets.shape, targets[0]  # (8, 2), [0.0, 1.0]
        ```
        """
        controllers = batch.controllers
        trace = batch.trace
        targets = {}
        for i, q in enumerate(controllers):
            downstream = set(self._downstream.get(q, ()))
            fixed = [
                (k, p)
                for k, p in enumerate(controllers)
                if p != q and p not in downstream
            ]
            lowest = tf.reduce_min(rewards) - 1.0
            per_action = []
            for a in range(self._num_actions(batch, q)):
                best = None
                for j, joint in enumerate(joints):
                    if joint[i] != a:
                        continue
                    value = rewards[:, j]
                    for k, p in fixed:
                        taken = trace.decisions[p]
                        agrees = tf.logical_or(
                            tf.equal(taken, joint[k]), taken < 0
                        )
                        value = tf.where(agrees, value, lowest)
                    best = value if best is None else tf.maximum(best, value)
                per_action.append(best)
            targets[q] = tf.stop_gradient(tf.stack(per_action, axis=-1))
        return targets

    # -- losses ---------------------------------------------------------------

    def greedy_targets(self, batch):
        """Per controller, the target value of each action `(batch, K)`
        with the controllers downstream deciding for themselves.

        One forward pass per action of each controller: the controller
        forced to that action, the others that are not downstream at
        their decisions in the training trace, and the downstream ones
        left to take their argmax. The reward of that pass is the target.

        Example:

        ```python
        estimator = keras_d2nn.FullInformation(downstream="greedy")
        estimator.configure(model, ("gate",))
        batch = keras_d2nn.estimators.PolicyBatch(
            trace=model.trace(images[:8], training=True),
            controllers=("gate",), reward=tf.zeros([8]),
            greedy_reward=None, plan=model.plan,
            reward_of=lambda decisions: tf.cast(decisions["gate"], "float32"))
        targets = estimator.greedy_targets(batch)["gate"]
        targets.shape, targets[0]  # (8, 2), [0.0, 1.0]
        ```
        """
        _check_reward_of(batch)
        controllers, trace = batch.controllers, batch.trace
        size = tf.shape(batch.reward)[0]
        targets = {}
        for q in controllers:
            downstream = set(self._downstream.get(q, ()))
            # Where a controller did not decide (-1), its decision changes
            # nothing: any action may be forced there.
            fixed = {
                p: tf.maximum(tf.cast(trace.decisions[p], tf.int32), 0)
                for p in controllers
                if p != q and p not in downstream
            }
            columns = []
            for a in range(self._num_actions(batch, q)):
                decisions = dict(fixed)
                decisions[q] = tf.fill([size], tf.constant(a, tf.int32))
                columns.append(tf.cast(batch.reward_of(decisions), tf.float32))
            targets[q] = tf.stop_gradient(tf.stack(columns, axis=-1))
        return targets

    def controller_loss(self, batch):
        if self._greedy:
            return self._value_loss(batch, self.greedy_targets(batch))
        joints, rewards = self.action_rewards(batch)
        if self.objective == "value":
            return self._value_loss(
                batch, self.value_targets(batch, joints, rewards)
            )
        return self._expected_loss(batch, joints, rewards)

    def _value_loss(self, batch, targets):
        trace = batch.trace
        total = 0.0
        for q, target in targets.items():
            logits = tf.cast(trace.logits[q], tf.float32)
            if self._controller(batch, q).num_logits == 1:
                # A Bernoulli gate opens when its logit is > 0: the logit
                # is the value of opening minus that of staying closed.
                target = (target[:, 1] - target[:, 0])[:, None]
            elif self.centered:
                logits = logits - tf.reduce_mean(logits, -1, keepdims=True)
                target = target - tf.reduce_mean(target, -1, keepdims=True)
            error = tf.reduce_sum(tf.square(logits - target), axis=-1)
            ran = tf.cast(trace.executed[q], tf.float32)
            total += tf.reduce_mean(ran * error)
        return total

    def _expected_loss(self, batch, joints, rewards):
        trace = batch.trace
        probabilities, entropy = [], 0.0
        for q in batch.controllers:
            probs = self._controller(batch, q).action_probabilities(
                tf.cast(trace.logits[q], tf.float32), training=False
            )
            probabilities.append(probs)
            ran = tf.cast(trace.executed[q], tf.float32)
            entropy += tf.reduce_mean(
                ran * -tf.reduce_sum(probs * tf.math.log(probs + 1e-8), axis=-1)
            )
        expected = 0.0
        for j, joint in enumerate(joints):
            weight = 1.0
            for probs, a in zip(probabilities, joint):
                weight = weight * probs[:, a]
            expected += weight * rewards[:, j]
        return -tf.reduce_mean(expected) - self.entropy_weight * entropy

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "objective": self.objective,
                "entropy_weight": self.entropy_weight,
                "module_routing": self.module_routing,
                "max_joint_decisions": self.max_joint_decisions,
                "centered": self.centered,
                "downstream": self.downstream,
            }
        )
        return config
