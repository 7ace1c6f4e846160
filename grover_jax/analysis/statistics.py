"""The two fits the analyses share, from scikit-learn: principal axes and a logistic probe."""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PROBE_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # inverse L2 strength
PROBE_FOLDS = 5
# Tight enough that nearly separable features (many dimensions, few regions) reach the optimum:
# scikit-learn's default 1e-4 stops those after a few iterations, the same fit for every C.
PROBE_TOLERANCE = 1e-8


def principal_components(x_NxD: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores [N, k], fraction of variance of each axis) of the centred rows; each axis's sign
    is fixed so that its largest-magnitude loading is positive (scikit-learn's convention; SVD
    signs are otherwise arbitrary)."""
    x_NxD = np.asarray(x_NxD, np.float64)
    pca = PCA(n_components=min(k, *x_NxD.shape), svd_solver="full")  # exact, not randomized
    return pca.fit_transform(x_NxD), pca.explained_variance_ratio_


def logistic_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Predicted classes of `x_test` from a multinomial logistic regression (L-BFGS to
    convergence) on features standardised on the training rows, classes weighted by inverse
    training frequency (so rare classes such as promoters count as much as intergenic sequence).
    Its C is the one of PROBE_C_GRID with the best balanced accuracy over PROBE_FOLDS folds of the
    training rows, which come in genome order: without shuffling, each fold is mostly a run of
    neighbouring regions, scored by a fit on regions elsewhere. A fit that stops short of
    convergence says so (scikit-learn's ConvergenceWarning)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=10_000,
                                                               tol=PROBE_TOLERANCE))
    search = GridSearchCV(probe, {"logisticregression__C": PROBE_C_GRID}, scoring="balanced_accuracy",
                          cv=StratifiedKFold(PROBE_FOLDS))
    return search.fit(x_train, y_train).predict(x_test)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in `y_true`."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls))
