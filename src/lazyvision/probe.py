"""The linear probe: multinomial logistic regression on frozen embeddings.

The regularisation strength is chosen on the validation split from a wide sweep, as
in the linear-probe protocols of Kornblith et al. (2019) and the CLIP paper. Fitting
is kept cheap at any embedding size: features are standardised, then, when there are
well under as many images as dimensions, projected onto the span of the training rows
(an exact reparametrisation, since the L2-penalised optimum lies in that span), and
each strength in the sweep starts from the previous solution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax
from threadpoolctl import threadpool_limits

from lazyvision.errors import DataError

logger = logging.getLogger(__name__)

#: Inverse regularisation strengths of the coarse sweep, strong to weak, by decades.
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-6, 4, 11))
#: The fine step tried on each side of the best coarse strength.
REFINE_FACTOR = 10**0.5
#: How far (relative) the validation loss must fall below its value at the
#: strongest regularisation before the sweep may stop early.
PLATEAU_TOLERANCE = 1e-3
#: A step whose validation loss is this much (relative) above the best so far
#: ends the sweep at once: the loss is climbing into overfitting, not wandering.
RISE_TOLERANCE = 0.02
#: Validation losses this close (relative) count as a tie, which goes to the
#: stronger regularisation: a choice that rounding can flip (the same data with its
#: classes renamed, say) should not move the probe.
TIE_TOLERANCE = 1e-4

# The projection onto the row space pays while the training rows number well under
# the features; nearer square, building it costs more than it saves over a sweep of
# about 200 evaluations. It saves 45 evaluations' worth at 260 x 1280 x 10, but needs
# 180 to break even at 1000 x 2048 x 10 and 650 at 1500 x 2048 x 10.
_PROJECT_BELOW = 0.6
# Above this many multiply-adds per product, the gradient's product runs in float32,
# at half the memory traffic and twice the arithmetic rate: a fifth off the sweep at
# 5000 x 768 x 10 or 2000 x 2048 x 100, the probabilities moving by under 1e-6 there
# (by up to 1e-3 where a weakly regularised fit stops on the gradient tolerance). The
# loss stays float64: in float32 its rounding noise outgrows the last decreases, the
# line searches stall and the sweep takes 60% more evaluations.
_FLOAT32_ABOVE = 10_000_000


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
        standardised = (
            np.asarray(embeddings, dtype=np.float64) - self.mean
        ) / self.scale
        # (D, R) @ (R, K) first: projecting the rows would cost N * D * R.
        logits = standardised @ (self.projection @ self.weights) + self.bias
        return softmax(logits, axis=1)


def fit_probe(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    val_embeddings: np.ndarray,
    val_labels: np.ndarray,
    *,
    num_classes: int,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    max_iter: int = 500,
    patience: int = 2,
) -> Probe:
    """Fits the probe on train and picks its regularisation on val.

    The coarse sweep runs from strong to weak regularisation and stops once the
    validation log loss, having fallen below its value at the strongest
    regularisation, has failed to improve for ``patience`` steps, or at the first
    step that leaves it more than :data:`RISE_TOLERANCE` above its best; then the
    half-decade on each side of the best strength is tried. The chosen strength
    has the lowest validation log loss: a proper score that moves smoothly with
    the strength, where accuracy on a few hundred images moves in steps of one
    image and would pick by noise. Losses within :data:`TIE_TOLERANCE` of each
    other tie, and the stronger regularisation wins.

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
    # Threaded BLAS costs ten times more than it saves at these sizes, in the
    # products and in L-BFGS's own vector steps alike: numpy's and scipy's OpenBLAS
    # pools spin against each other between the small calls.
    with threadpool_limits(1, user_api="blas"):
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-12] = 1.0
        projection, z_train = _row_space_basis((x - mean) / scale)
        z_val = (np.asarray(val_embeddings, dtype=np.float64) - mean) / scale
        if projection is not None:
            z_val = z_val @ projection
        objective = _CrossEntropy(z_train, train_labels, num_classes)
        sweep, best_params = _sweep(
            objective,
            z_val,
            val_labels,
            c_grid=c_grid,
            max_iter=max_iter,
            patience=patience,
        )

    weights, bias = _unpack(best_params, num_classes)
    probe = Probe(
        mean=mean,
        scale=scale,
        projection=np.eye(x.shape[1]) if projection is None else projection,
        weights=weights,
        bias=bias,
        C=_best(sweep),
        sweep=tuple(sweep),
        fit_seconds=time.perf_counter() - start,
    )
    logger.debug("probe: C=%g after %d steps", probe.C, len(sweep))
    return probe


def _sweep(
    objective: _CrossEntropy,
    z_val: np.ndarray,
    val_labels: np.ndarray,
    *,
    c_grid: tuple[float, ...],
    max_iter: int,
    patience: int,
) -> tuple[list[tuple[float, float, float]], np.ndarray]:
    """The sweep of :func:`fit_probe`, and the parameters at its chosen strength."""
    num_classes = objective.num_classes
    sweep: list[tuple[float, float, float]] = []
    fitted: dict[float, np.ndarray] = {}

    def fit(c: float, init: np.ndarray) -> tuple[float, float]:
        fitted[c] = objective.minimise(init, c=c, max_iter=max_iter)
        weights, bias = _unpack(fitted[c], num_classes)
        val_proba = softmax(z_val @ weights + bias, axis=1)
        score = _balanced_accuracy(val_labels, val_proba.argmax(axis=1), num_classes)
        loss = _log_loss(val_labels, val_proba)
        sweep.append((c, score, loss))
        return score, loss

    # Zero weights and the log class frequencies as biases: the optimum of the
    # strongest regularisation, give or take, where from zero biases L-BFGS spends
    # dozens of steps on them alone. Half a count stands in for an absent class.
    params = np.zeros((objective.z.shape[1] + 1) * num_classes)
    counts = np.bincount(objective.labels, minlength=num_classes)
    params[-num_classes:] = np.log(np.maximum(counts, 0.5) / len(objective.labels))
    plateau: float | None = None
    top_loss = np.inf
    since_improved = 0
    for c in c_grid:
        _, loss = fit(c, params)
        params = fitted[c]
        # The strongest strengths all predict the class frequencies: the loss
        # wanders along that plateau, and only once it has fallen below it does
        # a loss that stops falling mean the best strength is behind. Past it,
        # weaker regularisation only overfits, and those fits are the slow ones.
        if plateau is None:
            plateau = loss * (1 - PLATEAU_TOLERANCE)
        improved = loss < top_loss
        climbing = loss > top_loss * (1 + RISE_TOLERANCE)
        top_loss = min(top_loss, loss)
        since_improved = 0 if improved else since_improved + 1
        # Weaker strengths than these only fit the training rows more closely,
        # and take the most iterations: half the sweep's time past the best.
        # A clear climb ends the sweep even where the loss never left the
        # plateau: features that say nothing of the classes only overfit from
        # there on, and the wandering along the plateau is far smaller.
        if climbing or (top_loss < plateau and since_improved >= patience):
            break
    coarse_best = _best(sweep)
    for c in (coarse_best / REFINE_FACTOR, coarse_best * REFINE_FACTOR):
        if c_grid[0] <= c <= c_grid[-1]:
            fit(c, fitted[coarse_best])
    return sweep, fitted[_best(sweep)]


def _best(sweep: list[tuple[float, float, float]]) -> float:
    """The strength with the lowest validation log loss; the strongest among those
    within :data:`TIE_TOLERANCE` of it."""
    lowest = min(loss for _, _, loss in sweep)
    return min(c for c, _, loss in sweep if loss <= lowest * (1 + TIE_TOLERANCE))


def _row_space_basis(x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """An orthonormal basis (D, R) of the row space of ``x`` and ``x`` in it.

    None and ``x`` itself where the projection would not pay.
    """
    num_rows, num_features = x.shape
    if num_rows >= _PROJECT_BELOW * num_features:
        return None, x
    # The eigenvectors of the (N, N) Gram matrix give the same basis as an SVD of x
    # in a third to a half of the time. Their eigenvalues, the squared singular
    # values, carry rounding noise under 1e-15 of the largest; those under 1e-12 of it
    # (singular values under 1e-6 of the largest) are dropped as noise, among them the
    # direction that centring removes.
    eigenvalues, vectors = np.linalg.eigh(x @ x.T)
    keep = eigenvalues > eigenvalues[-1] * 1e-12
    if eigenvalues[-1] <= 0:
        keep[:] = False
    singular = np.sqrt(eigenvalues[keep])
    projected = np.ascontiguousarray(vectors[:, keep] * singular)
    return (x.T @ vectors[:, keep]) / singular, projected


class _CrossEntropy:
    """Mean cross-entropy of a softmax layer on fixed rows, plus an L2 penalty."""

    def __init__(self, z: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self.z = z
        self.labels = labels
        self.num_classes = num_classes
        self.penalty = 0.0
        self._rows = np.arange(len(labels))
        self._z32 = (
            z.astype(np.float32) if z.size * num_classes > _FLOAT32_ABOVE else None
        )

    def minimise(self, init: np.ndarray, *, c: float, max_iter: int) -> np.ndarray:
        """L-BFGS from ``init`` with the penalty 1 / (2 C N) of the squared weights."""
        self.penalty = 1.0 / (c * len(self.labels))
        result = minimize(
            self,
            init,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": 1e-6},
        )
        return np.asarray(result.x)

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and its gradient at ``params``, weights (R, K) then bias (K,)."""
        num_rows = len(self.labels)
        weights, bias = _unpack(params, self.num_classes)
        logits = self.z @ weights
        logits += bias
        logits -= logits.max(axis=1, keepdims=True)
        picked = logits[self._rows, self.labels].sum()
        proba = np.exp(logits, out=logits)
        totals = proba.sum(axis=1, keepdims=True)
        squared = float(params[: weights.size] @ params[: weights.size])
        loss = (np.log(totals).sum() - picked) / num_rows + 0.5 * self.penalty * squared

        residual = proba
        residual /= totals * num_rows
        residual[self._rows, self.labels] -= 1.0 / num_rows
        grad = np.empty_like(params)
        grad_weights, grad_bias = _unpack(grad, self.num_classes)
        if self._z32 is None:
            np.matmul(self.z.T, residual, out=grad_weights)
        else:
            grad_weights[:] = self._z32.T @ residual.astype(np.float32)
        grad_weights += self.penalty * weights
        residual.sum(axis=0, out=grad_bias)
        return float(loss), grad


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
