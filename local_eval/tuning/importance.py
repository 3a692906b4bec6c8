"""How much each hyperparameter moved the score, from the completed trials.

fANOVA (Optuna's, which needs scikit-learn) when it is installed. Otherwise a
rank statistic that needs nothing but numpy: for a numeric hyperparameter the
absolute Spearman correlation between its value and the score (the sign, kept
in the table, says which way is better); for a choice the correlation ratio of
the score's ranks between the options. Both lie in [0, 1]; with few trials they
are rough, which the report says beside the trial count.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from methods.search_space import Choice, Dimension

MIN_TRIALS = 2


def param_importances(
    study: optuna.Study, space: dict[str, Dimension]
) -> tuple[str, dict[str, float], dict[str, float | None]]:
    """(what was computed, importance per hyperparameter, direction per hyperparameter).

    Directions are Spearman's rho for numeric hyperparameters, None for choices
    and for fANOVA. Hyperparameters that never varied are left out.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    varied = [
        name
        for name in space
        if len({repr(t.params.get(name)) for t in trials if name in t.params}) > 1
    ]
    if len(trials) < MIN_TRIALS or not varied:
        return "none (fewer than two completed trials with differing values)", {}, {}
    if importlib.util.find_spec("sklearn") is not None:
        values = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            params=varied,
        )
        return "fANOVA", dict(values), {name: None for name in values}
    scores = np.array([t.value for t in trials], dtype=float)
    importances: dict[str, float] = {}
    directions: dict[str, float | None] = {}
    for name in varied:
        values = [t.params.get(name) for t in trials]
        if isinstance(space[name], Choice):
            importances[name] = correlation_ratio(values, scores)
            directions[name] = None
        else:
            rho = spearman(np.array(values, dtype=float), scores)
            importances[name] = abs(rho)
            directions[name] = rho
    ordered = dict(sorted(importances.items(), key=lambda kv: -kv[1]))
    return "Spearman |rho| / correlation ratio (scikit-learn not installed)", ordered, directions


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    result = np.empty(len(values), dtype=float)
    result[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        result[tied] = result[tied].mean()
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of the ranks; 0 when either side is constant."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.sqrt((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denominator) if denominator else 0.0


def correlation_ratio(groups: list[Any], y: np.ndarray) -> float:
    """How much of the score ranks' spread lies between the options (eta, in [0, 1])."""
    ry = ranks(y)
    total = float(((ry - ry.mean()) ** 2).sum())
    if not total:
        return 0.0
    keys = [repr(g) for g in groups]
    between = 0.0
    for key in set(keys):
        members = ry[[k == key for k in keys]]
        between += len(members) * (members.mean() - ry.mean()) ** 2
    return float(np.sqrt(between / total))
