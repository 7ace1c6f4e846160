"""The few statistics the analyses need, in numpy: ranks, Spearman's rho, PCA, a logistic probe."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (what Spearman's rho is defined on)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    ranks = np.empty(len(x), np.float64)
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's r of average ranks); NaN if either is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def principal_components(x_NxD: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores [N, k], fraction of variance of each axis) of the centred rows; each axis's sign
    is fixed so that its largest-magnitude loading is positive (SVD signs are arbitrary)."""
    centred = np.asarray(x_NxD, np.float64) - np.mean(x_NxD, axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(k, len(s))
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    scores = u[:, :k] * s[:k] * signs
    return scores, (s[:k] ** 2) / max((s**2).sum(), 1e-300)


def logistic_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int,
                   l2: float = 1e-3, steps: int = 500, learning_rate: float = 0.05) -> np.ndarray:
    """Predicted classes of `x_test` from a multinomial logistic regression fitted on the
    standardised training features, classes weighted by inverse training frequency (so rare
    classes such as promoters count as much as intergenic sequence), L2 on the weights, full-batch
    Adam."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    x_train = jnp.asarray((x_train - mean) / std, jnp.float32)
    x_test = jnp.asarray((x_test - mean) / std, jnp.float32)
    counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
    class_weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0.0)
    sample_weight = jnp.asarray(class_weight[y_train] / class_weight[y_train].sum(), jnp.float32)
    labels = jnp.asarray(y_train)
    params = {"w": jnp.zeros((x_train.shape[1], n_classes)), "b": jnp.zeros(n_classes)}
    optimizer = optax.adam(learning_rate)

    def loss(p):
        log_p = jax.nn.log_softmax(x_train @ p["w"] + p["b"])
        nll = -jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]
        return jnp.sum(sample_weight * nll) + l2 * jnp.sum(p["w"] ** 2)

    def step(carry, _):
        p, state = carry
        updates, state = optimizer.update(jax.grad(loss)(p), state)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, optimizer.init(p)), None, length=steps))(params)
    return np.asarray(jnp.argmax(x_test @ params["w"] + params["b"], axis=1))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in `y_true`."""
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return float(np.mean(recalls))
