"""The linear probe: multinomial logistic regression on frozen embeddings.

The regularisation strength is chosen on the validation split from a wide sweep, as
in the linear-probe protocols of Kornblith et al. (2019) and the CLIP paper. Fitting
is kept cheap at any embedding size: features are standardised, then projected onto
the span of the training rows (an exact reparametrisation when there are fewer
images than dimensions, since the L2-penalised optimum lies in that span), and each
strength in the sweep starts from the previous solution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from threadpoolctl import threadpool_limits

from lazyvision.errors import DataError

logger = logging.getLogger(__name__)

#: Inverse regularisation strengths of the coarse sweep, strong to weak, by decades.
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-6, 4, 11))
#: The fine step tried on each side of the best coarse strength.
REFINE_FACTOR = 10**0.5


@dataclass(frozen=True)
class Probe:
    """A fitted probe: standardisation, projection and the linear layer.

    Attributes:
        mean: Per-feature mean of the training embeddings.
        scale: Per-feature standard deviation (ones where a feature is constant).
        projection: (D, R) matrix from standardised features to the fitted basis.
        weights: (R, K) weights of the linear layer.
        bias: (K,) bias of the linear layer.
        C: The chosen inverse regularisation strength.
        sweep: (C, validation balanced accuracy, validation log loss) per step.
        fit_seconds: Wall time of the whole sweep.
    """

    mean: np.ndarray
    scale: np.ndarray
    projection: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    C: float
    sweep: tuple[tuple[float, float, float], ...] = field(default=())
    fit_seconds: float = 0.0

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities, (N, K), for raw embeddings (N, D)."""
        projected = self._project(embeddings)
        return softmax(projected @ self.weights + self.bias, axis=1)

    def _project(self, embeddings: np.ndarray) -> np.ndarray:
        standardised = (
            np.asarray(embeddings, dtype=np.float64) - self.mean
        ) / self.scale
        return standardised @ self.projection


def fit_probe(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    val_embeddings: np.ndarray,
    val_labels: np.ndarray,
    *,
    num_classes: int,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    max_iter: int = 500,
    patience: int = 3,
) -> Probe:
    """Fits the probe on train and picks its regularisation on val.

    The coarse sweep runs from strong to weak regularisation and stops once
    validation balanced accuracy and log loss have both failed to improve for
    ``patience`` steps; then the half-decade on each side of the best strength is
    tried. The chosen strength has the lowest validation log loss: a proper score
    that moves smoothly with the strength, where accuracy on a few hundred images
    moves in steps of one image and would pick by noise.

    Args:
        train_embeddings: (N, D) training embeddings.
        train_labels: (N,) class indices in ``range(num_classes)``.
        val_embeddings: (M, D) validation embeddings.
        val_labels: (M,) class indices.
        num_classes: K, the number of classes of the whole dataset.
        c_grid: Inverse regularisation strengths to try, in increasing order.
        max_iter: L-BFGS iterations per strength.
        patience: Steps without improvement before the sweep stops.

    Returns:
        The fitted probe.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(40, 8)); y = (x[:, 0] > 0).astype(int)
        >>> probe = fit_probe(x[:30], y[:30], x[30:], y[30:], num_classes=2)
        >>> probe.predict_proba(x[30:]).shape
        (10, 2)
    """
    start = time.perf_counter()
    train_labels = np.asarray(train_labels, dtype=np.int64)
    val_labels = np.asarray(val_labels, dtype=np.int64)
    if len(train_labels) == 0 or len(val_labels) == 0:
        raise DataError(
            "the probe needs images in both train and val; got "
            f"{len(train_labels)} train and {len(val_labels)} val"
        )
    if len(np.unique(train_labels)) < 2:
        raise DataError("the probe needs at least two classes in train")

    x = np.asarray(train_embeddings, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    standardised = (x - mean) / scale
    projection = _row_space_basis(standardised)
    z_train = standardised @ projection
    z_val = ((np.asarray(val_embeddings, dtype=np.float64) - mean) / scale) @ projection

    targets = np.eye(num_classes)[train_labels]
    sweep: list[tuple[float, float, float]] = []
    fitted: dict[float, np.ndarray] = {}

    def fit(c: float, init: np.ndarray) -> tuple[float, float]:
        fitted[c] = _fit_one(z_train, targets, init, c=c, max_iter=max_iter)
        weights, bias = _unpack(fitted[c], num_classes)
        val_proba = softmax(z_val @ weights + bias, axis=1)
        score = _balanced_accuracy(val_labels, val_proba.argmax(axis=1), num_classes)
        loss = _log_loss(val_labels, val_proba)
        sweep.append((c, score, loss))
        return score, loss

    params = np.zeros((z_train.shape[1] + 1) * num_classes)
    top_score, top_loss = -np.inf, np.inf
    since_improved = 0
    for c in c_grid:
        score, loss = fit(c, params)
        params = fitted[c]
        # Past the best strength both curves turn: weaker regularisation only
        # overfits, and those fits are the slow ones.
        improved = score > top_score or loss < top_loss
        since_improved = 0 if improved else since_improved + 1
        top_score, top_loss = max(top_score, score), min(top_loss, loss)
        if since_improved >= patience:
            break
    coarse_best = _best(sweep)
    for c in (coarse_best / REFINE_FACTOR, coarse_best * REFINE_FACTOR):
        if c_grid[0] <= c <= c_grid[-1]:
            fit(c, fitted[coarse_best])
    best_c = _best(sweep)
    best_params = fitted[best_c]

    weights, bias = _unpack(best_params, num_classes)
    probe = Probe(
        mean=mean,
        scale=scale,
        projection=projection,
        weights=weights,
        bias=bias,
        C=best_c,
        sweep=tuple(sweep),
        fit_seconds=time.perf_counter() - start,
    )
    logger.debug("probe: C=%g after %d steps", probe.C, len(sweep))
    return probe


def _best(sweep: list[tuple[float, float, float]]) -> float:
    """The strength with the lowest validation log loss."""
    return min(sweep, key=lambda step: step[2])[0]


def _row_space_basis(x: np.ndarray) -> np.ndarray:
    """An orthonormal basis (D, R) of the span of the rows of ``x``."""
    num_rows, num_features = x.shape
    if num_rows >= num_features:
        return np.eye(num_features)
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    keep = singular > singular[0] * 1e-10 if singular.size else singular > 0
    return np.ascontiguousarray(vt[keep].T)


def _fit_one(
    z: np.ndarray, targets: np.ndarray, init: np.ndarray, *, c: float, max_iter: int
) -> np.ndarray:
    """L-BFGS on the mean cross-entropy plus an L2 penalty of 1 / (2 C N)."""
    num_rows, num_features = z.shape
    num_classes = targets.shape[1]
    penalty = 1.0 / (c * num_rows)

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights = params[: num_features * num_classes].reshape(
            num_features, num_classes
        )
        bias = params[num_features * num_classes :]
        logits = z @ weights + bias
        log_proba = log_softmax(logits, axis=1)
        loss = -np.sum(targets * log_proba) / num_rows
        loss += 0.5 * penalty * np.sum(weights * weights)
        residual = (np.exp(log_proba) - targets) / num_rows
        grad_weights = z.T @ residual + penalty * weights
        grad = np.concatenate([grad_weights.ravel(), residual.sum(axis=0)])
        return float(loss), grad

    # Threaded BLAS costs ten times more than it saves at these sizes: numpy's and
    # scipy's OpenBLAS pools spin against each other between the small products.
    with threadpool_limits(1, user_api="blas"):
        result = minimize(
            loss_and_grad,
            init,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-6},
        )
    return np.asarray(result.x)


def _unpack(params: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    weights = params[:-num_classes].reshape(-1, num_classes)
    return weights, params[-num_classes:]


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, k: int) -> float:
    counts = np.bincount(labels, minlength=k)
    hits = np.bincount(labels[predicted == labels], minlength=k)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def _log_loss(labels: np.ndarray, proba: np.ndarray) -> float:
    picked = proba[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))
