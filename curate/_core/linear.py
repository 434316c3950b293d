"""ℓ1-penalised logistic regression spelled out for every supported scikit-learn.

scikit-learn 1.8 deprecated ``penalty`` for ``l1_ratio``; before 1.8 ``l1_ratio`` is ignored unless
``penalty="elasticnet"``, so ``l1_ratio=1.0`` alone silently fits an ℓ2 model there. DFR and
DISPEL's heads are ℓ1 (liblinear) in their authors' code.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def l1_logistic(c: float, *, seed: int = 0, max_iter: int = 1000) -> Any:
    """An unfitted ℓ1 ``LogisticRegression`` (liblinear) with inverse regularisation ``c``."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", random_state=seed, max_iter=max_iter)
    return LogisticRegression(penalty="l1", C=c, solver="liblinear", random_state=seed, max_iter=max_iter)


def linear_predict(coef: np.ndarray, intercept: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Class predictions of a (possibly averaged) linear model: ``coef`` (K, d) or (1, d) for binary."""
    s = z @ coef.T + intercept
    return (s[:, 0] > 0).astype(np.int64) if s.shape[1] == 1 else s.argmax(1)
