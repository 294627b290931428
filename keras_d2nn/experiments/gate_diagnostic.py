"""Issue 17's diagnostic: does a learned early-exit gate rank examples
better than the cheap head's confidence, on the same modules?

For a model with one early exit (`Graph.early_exit`, e.g.
`high_low`), every test example is run with the exit forced to continue,
which gives, on the model's own modules, whether the cheap head is right
(`stop`), whether the expensive branch is right (`continue`), the cheap
head's max softmax and the gate's score for continuing. Then:

- at each share `s` of examples sent to the expensive branch, the
  accuracy when the top `s` by the gate's score continue, against the top
  `s` by low confidence (the threshold exit), and the difference in points;
- the within-predicted-class AUC of each score for finding the images the
  expensive branch fixes (cheap head wrong, expensive right): the gate may
  rank classes well (a class prior) and examples within a class badly;
- how many of the gate's own decisions a per-predicted-class majority rule
  reproduces (1.0: the gate is a class prior).

Example:

```python
from keras_d2nn.experiments import gate_diagnostic

arrays = gate_diagnostic.gate_scores(model, test_images, test_labels)
result = gate_diagnostic.diagnose(arrays, shares=(0.25, 0.5))
print(gate_diagnostic.format_diagnostic("untrained high_low", result))
```
"""

import numpy as np
import tensorflow as tf

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def gate_scores(model, x, y, batch_size=500):
    """Per example: the arrays the diagnostic needs.

    Returns:
        A dict of NumPy arrays: `stop_correct`, `continue_correct` (bool),
        `confidence` (the head's max softmax), `predicted` (the head's
        class), `score` (the gate's logit margin for continuing: `logit
        [continue] - logit[stop]`, or the one logit of a Bernoulli gate)
        and `greedy` (the gate's own decision is to continue).

    Example: `arrays = gate_scores(model, x_test, y_test)`.
    """
    exits = model.plan.exits
    if len(exits) != 1:
        raise ValueError(
            "gate_scores needs a model with exactly one early exit "
            f"(Graph.early_exit); this one has {len(exits)}."
        )
    exit_ = exits[0]
    q, head = exit_.controller, exit_.head
    node = model.plan.nodes[q]
    go_on = node.actions.index(exit_.proceed)
    stop = node.actions.index(exit_.stop)
    parts = {k: [] for k in ("head", "output", "logits")}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        forced = {q: tf.fill([len(batch)], go_on)}
        trace = model.trace(batch, decisions=forced, statistics=False)
        parts["head"].append(trace.values[head].numpy())
        output = next(iter(trace.outputs.values()))
        parts["output"].append(output.numpy())
        parts["logits"].append(trace.logits[q].numpy())
    head_logits = np.concatenate(parts["head"])
    output = np.concatenate(parts["output"])
    logits = np.concatenate(parts["logits"])
    y = np.asarray(y).reshape(-1)
    probs = _softmax(head_logits)
    if node.layer.num_logits == 1:
        score = logits[:, 0] if go_on == 1 else -logits[:, 0]
    else:
        score = logits[:, go_on] - logits[:, stop]
    greedy = np.asarray(node.layer.greedy_action(logits)) == go_on
    return {
        "stop_correct": probs.argmax(-1) == y,
        "continue_correct": output.argmax(-1) == y,
        "confidence": probs.max(-1),
        "predicted": probs.argmax(-1),
        "score": score,
        "greedy": greedy,
    }


def accuracy_at_share(send_score, stop_correct, continue_correct, share):
    """Accuracy when the `share` of examples with the highest
    `send_score` take the expensive branch.

    Example: `accuracy_at_share(-confidence, stop_ok, high_ok, 0.2)`.
    """
    count = int(round(share * len(send_score)))
    order = np.argsort(-send_score, kind="stable")
    sent = np.zeros(len(send_score), bool)
    sent[order[:count]] = True
    return float(np.mean(np.where(sent, continue_correct, stop_correct)))


def auc(score, positive):
    """Area under the ROC curve of `score` for `positive` (ties count
    half); NaN when either class is empty.

    Example: `auc(np.array([0.1, 0.9]), np.array([False, True]))  # 1.0`.
    """
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, np.float64))
    return float(
        (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    )


def within_class_auc(score, positive, groups):
    """The AUC of `score` for `positive` within each group, averaged with
    the groups' sizes as weights (groups with one class only left out).

    Example: `within_class_auc(score, fixes, predicted_class)`.
    """
    total, weight = 0.0, 0
    for g in np.unique(groups):
        members = groups == g
        value = auc(score[members], positive[members])
        if not np.isnan(value):
            total += value * members.sum()
            weight += members.sum()
    return float(total / weight) if weight else float("nan")


def class_prior_agreement(decisions, groups):
    """Share of `decisions` (bool) that the per-group majority reproduces.

    Example: `class_prior_agreement(greedy, predicted_class)  # 0.91`.
    """
    agree = 0
    for g in np.unique(groups):
        members = decisions[groups == g]
        agree += max(members.sum(), (~members).sum())
    return float(agree / len(decisions))


def diagnose(arrays, shares=SHARES):
    """The diagnostic of issue 17 from `gate_scores`' arrays.

    Returns:
        `{"shares": [{"share", "gate", "threshold", "difference_points"}],
        "auc_within_class": {"gate", "confidence"}, "auc_overall": {...},
        "class_prior_agreement", "greedy_share", "greedy_accuracy",
        "stop_accuracy", "continue_accuracy", "fixable_share"}`.

    Example: `diagnose(gate_scores(model, x_test, y_test))`.
    """
    stop_ok, go_ok = arrays["stop_correct"], arrays["continue_correct"]
    gate, threshold = arrays["score"], -arrays["confidence"]
    rows = []
    for share in shares:
        a = accuracy_at_share(gate, stop_ok, go_ok, share)
        b = accuracy_at_share(threshold, stop_ok, go_ok, share)
        rows.append(
            {
                "share": share,
                "gate": a,
                "threshold": b,
                "difference_points": 100 * (a - b),
            }
        )
    fixes = go_ok & ~stop_ok
    predicted, greedy = arrays["predicted"], arrays["greedy"]
    return {
        "shares": rows,
        "auc_within_class": {
            "gate": within_class_auc(gate, fixes, predicted),
            "confidence": within_class_auc(threshold, fixes, predicted),
        },
        "auc_overall": {
            "gate": auc(gate, fixes),
            "confidence": auc(threshold, fixes),
        },
        "class_prior_agreement": class_prior_agreement(greedy, predicted),
        "greedy_share": float(greedy.mean()),
        "greedy_accuracy": float(np.mean(np.where(greedy, go_ok, stop_ok))),
        "stop_accuracy": float(stop_ok.mean()),
        "continue_accuracy": float(go_ok.mean()),
        "fixable_share": float(fixes.mean()),
    }


def format_diagnostic(name, result):
    """The diagnostic as printable lines.

    Example: `print(format_diagnostic("reinforce", diagnose(arrays)))`.
    """
    lines = [
        f"== {name}",
        f"cheap head alone {result['stop_accuracy']:.4f}, expensive "
        f"branch alone {result['continue_accuracy']:.4f}, fixable "
        f"{result['fixable_share']:.3f}; own greedy routing: "
        f"{result['greedy_share']:.3f} sent, accuracy "
        f"{result['greedy_accuracy']:.4f}",
        f"{'share':>6} {'gate':>8} {'threshold':>10} {'gate-thr (pts)':>15}",
    ]
    for row in result["shares"]:
        lines.append(
            f"{row['share']:>6.2f} {row['gate']:>8.4f} "
            f"{row['threshold']:>10.4f} "
            f"{row['difference_points']:>+15.2f}"
        )
    within, overall = result["auc_within_class"], result["auc_overall"]
    lines.append(
        f"AUC for images the expensive branch fixes, within "
        f"predicted class: gate {within['gate']:.3f}, confidence "
        f"{within['confidence']:.3f} (overall: gate "
        f"{overall['gate']:.3f}, confidence "
        f"{overall['confidence']:.3f})"
    )
    lines.append(
        f"gate decisions reproduced by a per-predicted-class "
        f"majority rule: {result['class_prior_agreement']:.3f}"
    )
    return "\n".join(lines)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _average_ranks(values):
    """1-based ranks, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start + 1
        while (
            stop < len(values) and sorted_values[stop] == sorted_values[start]
        ):
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2.0
        start = stop
    return ranks
