"""The linear probe: exact against scikit-learn, sensible regularisation choice."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from lazyvision import probe as probe_module
from lazyvision.errors import DataError
from lazyvision.probe import DEFAULT_C_GRID, RISE_TOLERANCE, Probe, fit_probe


def _blobs(
    num_rows: int,
    num_features: int,
    num_classes: int,
    seed: int = 0,
    spread: float = 0.4,
):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, num_features))
    labels = rng.integers(0, num_classes, num_rows)
    points = spread * centres[labels] + rng.normal(size=(num_rows, num_features))
    return points, labels


def _digits(num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Real 8 x 8 digits, mixed linearly into more dimensions: embeddings of rank 64."""
    pixels, labels = load_digits(return_X_y=True)
    mixing = np.random.default_rng(0).normal(size=(64, num_features))
    return pixels @ mixing, labels


# Fewer rows than features: projected (60), not worth projecting (150); and more.
@pytest.mark.parametrize(
    ("num_rows", "num_features"), [(60, 200), (150, 200), (300, 20)]
)
def test_probe_matches_sklearn_at_the_chosen_strength(
    num_rows: int, num_features: int
) -> None:
    x, y = _blobs(num_rows + 60, num_features, 3, spread=0.15)
    probe = fit_probe(
        x[:num_rows], y[:num_rows], x[num_rows:], y[num_rows:], num_classes=3
    )
    standardised = (x - probe.mean) / probe.scale
    reference = LogisticRegression(C=probe.C, tol=1e-10, max_iter=5000)
    reference.fit(standardised[:num_rows], y[:num_rows])
    expected = reference.predict_proba(standardised[num_rows:])
    np.testing.assert_allclose(probe.predict_proba(x[num_rows:]), expected, atol=2e-3)


@pytest.mark.parametrize(
    ("setting", "value"), [("_PROJECT_BELOW", 0.0), ("_FLOAT32_ABOVE", 0)]
)
def test_shortcuts_change_neither_the_choice_nor_the_predictions(
    monkeypatch: pytest.MonkeyPatch, setting: str, value: float
) -> None:
    # 150 rows of rank 53 in 512 dimensions: by default projected, in float64.
    x, y = _digits(512)
    train, val, test = slice(0, 150), slice(150, 300), slice(300, None)
    fast = fit_probe(x[train], y[train], x[val], y[val], num_classes=10)
    monkeypatch.setattr(probe_module, setting, value)
    plain = fit_probe(x[train], y[train], x[val], y[val], num_classes=10)
    assert fast.projection.shape[1] == 53
    assert [step[0] for step in fast.sweep] == [step[0] for step in plain.sweep]
    assert fast.C == plain.C
    np.testing.assert_allclose(
        fast.predict_proba(x[test]), plain.predict_proba(x[test]), atol=2e-3
    )


def test_strongest_regularisation_predicts_the_class_frequencies() -> None:
    x, y = _blobs(200, 30, 4, spread=1.0)
    probe = fit_probe(x[:150], y[:150], x[150:], y[150:], num_classes=5, c_grid=(1e-6,))
    frequencies = np.bincount(y[:150], minlength=5) / 150
    proba = probe.predict_proba(x[150:])
    np.testing.assert_allclose(
        proba[:, :4], np.tile(frequencies[:4], (50, 1)), atol=1e-3
    )
    assert proba[:, 4].max() < 1e-3


def _full_sweep(monkeypatch: pytest.MonkeyPatch, *args: Any) -> Probe:
    """The probe fitted at every strength of the grid: no early stop."""
    monkeypatch.setattr(probe_module, "RISE_TOLERANCE", math.inf)
    return fit_probe(*args, num_classes=10, patience=len(DEFAULT_C_GRID))


@pytest.mark.parametrize("num_features", [64, 512])
def test_early_stop_keeps_the_strength_a_full_sweep_chooses(
    num_features: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _digits(num_features)
    x = x + np.random.default_rng(1).normal(scale=40.0, size=x.shape)
    train, val = slice(0, 200), slice(200, 500)
    args = (x[train], y[train], x[val], y[val])
    early = fit_probe(*args, num_classes=10)
    full = _full_sweep(monkeypatch, *args)
    assert early.C == full.C
    assert len(early.sweep) < len(full.sweep)
    np.testing.assert_allclose(early.predict_proba(x[val]), full.predict_proba(x[val]))


@pytest.mark.parametrize("noise", [0.0, 40.0, 160.0])
def test_a_clear_rise_of_the_val_loss_ends_the_sweep(
    noise: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _digits(256)
    x = x + np.random.default_rng(2).normal(scale=noise, size=x.shape)
    args = (x[:200], y[:200], x[200:500], y[200:500])
    early = fit_probe(*args, num_classes=10)
    full = _full_sweep(monkeypatch, *args)

    coarse = [step for step in early.sweep if step[0] in DEFAULT_C_GRID]
    losses = [loss for _, _, loss in coarse]
    best = int(np.argmin(losses))
    after = losses[best + 1 :]
    # One step past the best when it climbed clearly, else two (the patience).
    clear = after[0] > losses[best] * (1 + RISE_TOLERANCE)
    assert len(after) == (1 if clear else 2)
    assert early.C == full.C


def test_noise_features_get_strong_regularisation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 50))
    y = rng.integers(0, 2, 200)
    probe = fit_probe(x[:120], y[:120], x[120:], y[120:], num_classes=2)
    separable, labels = _blobs(200, 50, 2, seed=2)
    clean = fit_probe(
        separable[:120], labels[:120], separable[120:], labels[120:], num_classes=2
    )
    assert probe.C <= clean.C
    assert min(DEFAULT_C_GRID) / 10 < probe.C < max(DEFAULT_C_GRID) * 10


def test_probe_scores_classes_absent_from_train_with_zero_weight_classes() -> None:
    x, y = _blobs(90, 10, 3)
    y = np.where(y == 2, 1, y)  # class 2 exists in the data set but not here
    probe = fit_probe(x[:60], y[:60], x[60:], y[60:], num_classes=3)
    proba = probe.predict_proba(x[60:])
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 2].max() < 0.05


def test_probe_needs_two_classes_and_a_validation_split() -> None:
    x, _ = _blobs(20, 4, 2)
    with pytest.raises(DataError, match="at least two classes"):
        fit_probe(x[:10], np.zeros(10, int), x[10:], np.zeros(10, int), num_classes=2)
    with pytest.raises(DataError, match="0 val"):
        fit_probe(x[:10], np.arange(10) % 2, x[:0], np.zeros(0, int), num_classes=2)


def test_near_ties_go_to_the_stronger_regularisation() -> None:
    lowest = 0.4
    within = lowest * (1 + probe_module.TIE_TOLERANCE / 2)
    beyond = lowest * (1 + probe_module.TIE_TOLERANCE * 2)
    assert probe_module._best([(0.01, 0.8, within), (0.1, 0.8, lowest)]) == 0.01
    assert probe_module._best([(0.01, 0.8, beyond), (0.1, 0.8, lowest)]) == 0.1
    assert probe_module._best([(0.1, 0.8, lowest), (1.0, 0.8, within)]) == 0.1


@pytest.mark.parametrize("seed", range(4))
def test_renaming_the_classes_changes_neither_strength_nor_predictions(
    seed: int,
) -> None:
    x, y = _digits(100)
    rng = np.random.default_rng(seed)
    x = x + rng.normal(scale=60.0, size=x.shape)
    rows = rng.permutation(len(y))[:300]
    x, y = x[rows], y[rows]
    renamed = rng.permutation(10)
    first = fit_probe(x[:150], y[:150], x[150:], y[150:], num_classes=10)
    second = fit_probe(
        x[:150], renamed[y[:150]], x[150:], renamed[y[150:]], num_classes=10
    )
    assert first.C == second.C
    np.testing.assert_allclose(
        first.predict_proba(x[150:]),
        second.predict_proba(x[150:])[:, renamed],
        atol=1e-4,
    )


def test_features_that_never_beat_the_class_frequencies_stop_at_a_clear_climb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 256))
    y = rng.integers(0, 10, 400)
    args = (x[:260], y[:260], x[260:], y[260:])
    early = fit_probe(*args, num_classes=10)
    full = _full_sweep(monkeypatch, *args)

    assert early.C == full.C
    losses = [loss for c, _, loss in early.sweep if c in DEFAULT_C_GRID]
    # The loss never fell below its value at the strongest regularisation, and
    # the sweep ended at the first step clearly above its best.
    assert min(losses) == pytest.approx(losses[0], rel=1e-3)
    assert losses[-1] > min(losses) * (1 + RISE_TOLERANCE)
    assert all(loss <= min(losses) * (1 + RISE_TOLERANCE) for loss in losses[:-1])
    assert len(losses) < len(DEFAULT_C_GRID)
