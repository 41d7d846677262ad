"""Fitting a kernel-level latency model (archgen.bench.latency_model) on what calibration timed: per kernel
kind, the roofline-like baseline and the boosted trees over it, scored out of fold; and the network-level
correction from sums of isolated kernels to whole passes, scored left-one-out.

numpy and LightGBM are imported here only, so that loading a model and predicting (what a design search does)
need neither the regression library nor this module. The trees leave as plain arrays (`_export`), which the
model file holds and latency_model walks with numpy.
"""

from __future__ import annotations

import math
import random
from typing import Any, Optional, Sequence

from archgen.bench.kernel_units import KernelUnit
from archgen.bench.latency_model import (BYTES_AT, FEATURES, FORMAT, MACS_AT, RANGED, RANGED_AT, LatencyModel,
                                         baseline_ms, feature_matrix, library_version)
from archgen.errors import UserError

#: A kind needs this many samples for trees; with fewer it has the baseline alone.
MIN_TREE_SAMPLES = 40
FOLDS = 5
#: The boosting (LightGBM's own parameters): small trees, many of them, deterministic on one thread.
BOOSTING = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 15, "max_depth": 6,
            "min_data_in_leaf": 5, "deterministic": True, "force_row_wise": True, "num_threads": 1, "seed": 0,
            "verbose": -1}
ROUNDS = 200
#: Networks per batch size that a per-batch correction needs (else one correction for all batches).
MIN_BATCH_NETWORKS = 4
#: Networks the three-term correction needs (else the median ratio of passes to kernel sums).
MIN_FIT_NETWORKS = 8


def _nonnegative_fit(columns: Sequence[Any], y: Any) -> list[float]:
    """Coefficients >= 0 of the columns minimising the relative error of their sum to y: a least-squares fit
    over each subset of the columns, the best one whose coefficients are all non-negative (for three columns
    this is exact non-negative least squares)."""
    import numpy as np

    cols = np.stack(columns, 1)
    scale = np.abs(cols).max(0)
    # a column of zeros (the MACs of a kind that has none) takes no part: least squares would give it a
    # coefficient of rounding noise, which the scale below would blow up past any bound a model file allows
    live = scale > 0
    scale[~live] = 1.0
    a = cols / scale / y[:, None]
    n = cols.shape[1]
    best, best_res = np.zeros(n), math.inf
    for mask in range(1, 1 << n):
        use = [j for j in range(n) if mask >> j & 1]
        if not live[use].all():
            continue
        coef, *_ = np.linalg.lstsq(a[:, use], np.ones(len(y)), rcond=None)
        if (coef < 0).any():
            continue
        res = float(((a[:, use] @ coef - 1) ** 2).sum())
        if res < best_res:
            best = np.zeros(n)
            best[use] = coef
            best_res = res
    return [float(c) for c in best / scale]


def _baseline(x_macs: Any, x_bytes: Any, y: Any) -> list[float]:
    """a, b, c >= 0 minimising the relative error of a x MACs + b x bytes + c (_nonnegative_fit), then scaled
    to the median ratio of measured to fitted, since least squares on relative error leans low where the ratio
    spreads wide."""
    import numpy as np

    best = _nonnegative_fit([x_macs, x_bytes, np.ones_like(y)], y)
    fitted = np.maximum(best[0] * x_macs + best[1] * x_bytes + best[2], 1e-6)
    return [float(c) for c in np.asarray(best) * np.exp(np.median(np.log(y / fitted)))]


def _fit_kind(x: Any, y: Any, trees: Optional[bool] = None) -> tuple[list[float], Any]:
    """The kind's baseline and, with enough samples (or where `trees` says, as cross-validation does for the
    model the whole kind's samples make), its fitted LightGBM booster (else None)."""
    import numpy as np

    coef = _baseline(x[:, MACS_AT], x[:, BYTES_AT], y)
    if not (len(y) >= MIN_TREE_SAMPLES if trees is None else trees):
        return coef, None
    import lightgbm

    data = lightgbm.Dataset(x, label=np.log(y / baseline_ms(coef, x)), params={"verbose": -1})
    return coef, lightgbm.train(BOOSTING, data, num_boost_round=ROUNDS)


def _export(dump: dict) -> dict:
    """LightGBM's trees as flat arrays: each node's feature, threshold (left when x <= it), children and value;
    a leaf is its own two children, so a walk of `depth` steps from every root ends on the leaves."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    depth = 0

    def add(node: dict, level: int) -> int:
        nonlocal depth
        at = len(feature)
        feature.append(0)
        threshold.append(0.0)
        left.append(at)
        right.append(at)
        value.append(0.0)
        if "leaf_value" in node:
            value[at] = float(node["leaf_value"])
            depth = max(depth, level)
            return at
        if node.get("decision_type", "<=") != "<=":
            raise ValueError(f"unexpected LightGBM split {node.get('decision_type')}")
        feature[at], threshold[at] = int(node["split_feature"]), float(node["threshold"])
        left[at] = add(node["left_child"], level + 1)
        right[at] = add(node["right_child"], level + 1)
        return at

    for tree in dump["tree_info"]:
        roots.append(add(tree["tree_structure"], 0))
    return {"feature": feature, "threshold": threshold, "left": left, "right": right, "value": value,
            "roots": roots, "depth": depth}


def _folds(n: int, folds: int = FOLDS) -> list[int]:
    """Each sample's fold of `folds`, shuffled by a fixed seed (so cross-validation is repeatable)."""
    order = list(range(n))
    random.Random(0).shuffle(order)
    fold = [0] * n
    for i, j in enumerate(order):
        fold[j] = i % folds
    return fold


def _by_kind(samples: Sequence[tuple[KernelUnit, float]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, (unit, _) in enumerate(samples):
        out.setdefault(unit.kind, []).append(i)
    return out


def cross_validate(samples: Sequence[tuple[KernelUnit, float]]) -> list[float]:
    """Each sample's out-of-fold signed relative error (predicted / measured - 1), in order: per kind, the
    model fitted on the other folds (FOLDS of them; one per sample for a kind timed fewer times) predicts it.
    Where calibration should sample more. A kind timed once has no other sample: it is scored on itself. Each
    fold's model has the form the kind's whole samples give it (trees or the baseline alone), so that a kind
    of 40-49 samples, whose folds fall below MIN_TREE_SAMPLES, is scored as the model it ships."""
    import numpy as np

    errors = [0.0] * len(samples)
    for idx in _by_kind(samples).values():
        x = feature_matrix([samples[i][0] for i in idx])
        y = np.array([samples[i][1] for i in idx], dtype=float)
        folds = min(FOLDS, len(idx))
        fold = np.array(_folds(len(idx), folds))
        pred = np.empty(len(idx))
        trees = len(idx) >= MIN_TREE_SAMPLES
        for k in range(folds):
            test = fold == k
            train = ~test if folds > 1 else test
            coef, booster = _fit_kind(x[train], y[train], trees)
            pred[test] = baseline_ms(coef, x[test]) * (np.exp(booster.predict(x[test])) if booster else 1.0)
        for i, e in zip(idx, pred / y - 1):
            errors[i] = float(e)
    return errors


def _error_stats(errors: Sequence[float]) -> dict:
    import numpy as np

    e = np.abs(np.asarray(errors, dtype=float))
    return {"within_10": float((e <= 0.1).mean()) if len(e) else 0.0,
            "median_abs": float(np.median(e)) if len(e) else 0.0}


def fit(samples: Sequence[tuple[KernelUnit, float]], networks: Sequence[tuple[Sequence[KernelUnit], float]],
        meta: dict) -> dict:
    """The model document (what write_model writes) fitted on timed kernel configurations and whole passes.

    `samples`: (configuration, ms) timed in isolation; `networks`: (a network's units at its batch, its
    measured whole-pass ms), for the correction from a sum of isolated kernels to a pass; `meta`: backend,
    dtype, layout, batch_sizes, device (machine()), and what calibration records (spaces, minutes, timings).
    """
    import numpy as np

    for key in ("backend", "dtype", "layout", "device"):
        if key not in meta:
            raise ValueError(f"fit: meta lacks '{key}'")
    if not samples:
        raise UserError("no kernel was timed, so there is nothing to fit a latency model on")
    cv = cross_validate(samples)
    kinds = {}
    for kind, idx in sorted(_by_kind(samples).items()):
        x = feature_matrix([samples[i][0] for i in idx])
        y = np.array([samples[i][1] for i in idx], dtype=float)
        coef, booster = _fit_kind(x, y)
        trees = None if booster is None else _export(booster.dump_model())
        ranged = x[:, RANGED_AT]
        kinds[kind] = {"samples": len(idx), "baseline": coef, "trees": trees,
                       "ranges": {name: [float(ranged[:, j].min()), float(ranged[:, j].max())]
                                  for j, name in enumerate(RANGED)},
                       "patterns": [[list(absorbed), act] for absorbed, act in
                                    sorted({(samples[i][0].absorbed, samples[i][0].act or "") for i in idx})],
                       "cross_validated": _error_stats([cv[i] for i in idx]),
                       "how": ("baseline and trees" if trees else
                               f"baseline alone: {len(idx)} samples, fewer than the {MIN_TREE_SAMPLES} trees need")}
    x_all = feature_matrix([u for u, _ in samples])
    y_all = np.array([ms for _, ms in samples], dtype=float)
    doc = {"format": FORMAT, "backend": meta["backend"], "dtype": meta["dtype"], "layout": meta["layout"],
           "device": meta["device"], "meta": meta, "features": list(FEATURES),
           "library": f"lightgbm {library_version('lightgbm')}", "kinds": kinds,
           "fallback": _baseline(x_all[:, MACS_AT], x_all[:, BYTES_AT], y_all),
           "network": {"by": "pooled", "pooled": [1.0, 0.0, 0.0], "batches": {}, "networks": 0}}
    doc["network"] = _fit_network(LatencyModel(doc, "the model being fitted"), networks)
    return doc


def _fit_network(model: LatencyModel, networks: Sequence[tuple[Sequence[KernelUnit], float]]) -> dict:
    """measured = a x (sum of the network's predicted kernels) + b x (its units) + c, fitted on relative error
    per batch size where every batch has MIN_BATCH_NETWORKS networks and that predicts better left-one-out,
    else for all batches at once; with its fit error and the ratio of whole passes to the isolated sums."""
    import numpy as np

    rows = []
    for units, measured in networks:
        ms = [m for m, _ in model.unit_ms(units)]
        rows.append((units[0].batch if units else 1, sum(ms), len(units), float(measured)))
    out: dict[str, Any] = {"by": "pooled", "pooled": [1.0, 0.0, 0.0], "batches": {}, "networks": len(rows)}
    if not rows:
        return out
    data = np.array(rows, dtype=float)
    batches = sorted({int(b) for b in data[:, 0]})
    out["pass_over_kernels"] = {str(b): float(np.median(data[data[:, 0] == b, 3] / data[data[:, 0] == b, 1]))
                                for b in batches}
    pooled_loo = _loo(data)
    out["pooled"] = fit_correction(data)
    chosen = pooled_loo
    if len(batches) > 1 and all((data[:, 0] == b).sum() >= MIN_BATCH_NETWORKS for b in batches):
        per_loo = np.concatenate([_loo(data[data[:, 0] == b]) for b in batches])
        if np.median(np.abs(per_loo)) < np.median(np.abs(pooled_loo)):
            out["by"], chosen = "batch", per_loo
            out["batches"] = {str(b): fit_correction(data[data[:, 0] == b]) for b in batches}
    out["fit"] = _error_stats(chosen)
    return out


def fit_correction(data: Any, three_terms: Optional[bool] = None) -> list[float]:
    """a, b, c >= 0 of measured = a x kernels + b x units + c on relative error (_nonnegative_fit), from rows of
    (batch, a network's sum of predicted kernels, its units, its measured ms); the median ratio alone (b = c =
    0) with fewer than MIN_FIT_NETWORKS networks (`three_terms` decides instead, where given), or where the fit
    does not grow with the kernels (a = 0). Three free terms on four networks followed their noise (c = 73 ms
    at batch 8 where passes took 50-800 ms), and a negative b or c on eight predicted small held-out networks
    below zero."""
    import numpy as np

    ratio = [float(np.median(data[:, 3] / data[:, 1])), 0.0, 0.0]
    if not (len(data) >= MIN_FIT_NETWORKS if three_terms is None else three_terms):
        return ratio
    coef = _nonnegative_fit([data[:, 1], data[:, 2], np.ones(len(data))], data[:, 3])
    return coef if coef[0] > 0 else ratio


def _loo(data: Any) -> Any:
    """Each network's left-one-out relative error under fit_correction, each refit of the form the whole data
    gives it (at MIN_FIT_NETWORKS networks, the default, a refit on one fewer would be the median ratio, not
    the three terms stored)."""
    import numpy as np

    errors = []
    three_terms = len(data) >= MIN_FIT_NETWORKS
    for i in range(len(data)):
        rest = np.delete(data, i, 0)
        a, b, c = fit_correction(rest, three_terms) if len(rest) else [1.0, 0.0, 0.0]
        errors.append((a * data[i, 1] + b * data[i, 2] + c) / data[i, 3] - 1)
    return np.array(errors)

