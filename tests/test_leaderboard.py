# The expected tables below are as wide as the terminal they are drawn for.
# ruff: noqa: E501
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest

from lazyvision.errors import DataError
from lazyvision.leaderboard import (
    KEY_COLUMNS,
    WIDE_COLUMNS,
    _shorten_middle,
    format_leaderboard,
    mark_pareto,
    mark_ties,
    sort_rows,
)

NAN = float("nan")


def _ok(model: str, quality: float | None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model, "status": "ok", "reason": None}
    row["val_balanced_accuracy"] = quality
    row.update(values)
    return row


def _board() -> list[dict[str, Any]]:
    """A fixed run: a long name, a tie, a missing value, a timeout and a failure."""
    return [
        {
            "model": "broken_net",
            "status": "failed",
            "reason": "WeightsError: no weights\nfor broken_net",
        },
        _ok(
            "resnet18",
            0.9,
            val_balanced_accuracy_low=0.87,
            val_balanced_accuracy_high=0.93,
            val_f1=0.89,
            val_roc_auc=NAN,
            test_balanced_accuracy=None,
            images_per_second=850.0,
            num_params=11_689_512,
            tied_with_best=True,
            pareto=True,
        ),
        _ok(
            "vit_small_patch14_dinov2.lvd142m_ft_in1k_extra",
            0.9123,
            val_balanced_accuracy_low=0.8812,
            val_balanced_accuracy_high=0.9401,
            val_f1=0.905,
            val_roc_auc=0.97,
            test_balanced_accuracy=0.9,
            images_per_second=123.4,
            num_params=22_056_000,
            tied_with_best=False,
            pareto=True,
        ),
        {
            "model": "convnext_tiny",
            "status": "timed out",
            "reason": "over the 600 s budget while extracting features for the "
            "training split, batch 12 of 40 (try --max-seconds or a smaller model)",
        },
        _ok(
            "pixels",
            0.6,
            val_balanced_accuracy_low=0.55,
            val_balanced_accuracy_high=0.65,
            val_f1=0.58,
            val_roc_auc=0.66,
            images_per_second=9100.0,
            num_params=0,
            tied_with_best=False,
            pareto=True,
        ),
        _ok(
            "efficientnet_b0",
            NAN,
            val_f1=None,
            images_per_second=4.567,
            num_params=5_300_000,
            tied_with_best=False,
            pareto=False,
        ),
    ]


EXPECTED_KEY_TABLE = """\
                                        val                   val    val     test
#  model                            bal.acc         95% CI     F1    AUC  bal.acc  img/s  params
----------------------------------------------------------------------------------------------------
1  vit_small_patch…m_ft_in1k_extra    0.912  [0.881,0.940]  0.905  0.970    0.900    123   22.1M   *
2  resnet18                           0.900  [0.870,0.930]  0.890      –        –    850   11.7M  =*
3  pixels                             0.600  [0.550,0.650]  0.580  0.660        –   9100       0   *
4  efficientnet_b0                        –              –      –      –        –   4.57    5.3M
   broken_net                       failed: WeightsError: no weights for broken_net
   convnext_tiny                    timed out: over the 600 s budget while extracting features …

= tied with the best on val bal.acc (paired bootstrap, 95%)
* Pareto front: no other model is both better on val bal.acc and faster"""


def test_key_table_matches_expected_text() -> None:
    text = format_leaderboard(_board(), sort_metric="val_balanced_accuracy")
    assert text == EXPECTED_KEY_TABLE
    assert "\x1b" not in text


EXPECTED_LOG_LOSS_TABLE = """\
                 val                      val    val    val
#  model    log-loss          95% CI  bal.acc     F1    AUC  img/s  params
--------------------------------------------------------------------------
1  a_model     0.210  [0.180,13.402]    0.800  0.790  0.880   12.5    1.2K
2  b_model    12.500               –    0.910  0.900  0.950    300    2.5B
3  c_model         –               –    0.700  0.690  0.800   1000    999K"""


def test_log_loss_sort_puts_the_interval_on_the_sort_metric() -> None:
    rows = [
        _ok("b_model", 0.91, val_log_loss=12.5, val_f1=0.9, val_roc_auc=0.95,
            images_per_second=300.0, num_params=2_500_000_000),
        _ok("c_model", 0.7, val_log_loss=None, val_f1=0.69, val_roc_auc=0.8,
            images_per_second=1000.0, num_params=999_000),
        _ok("a_model", 0.8, val_log_loss=0.21, val_log_loss_low=0.18,
            val_log_loss_high=13.402, val_f1=0.79, val_roc_auc=0.88,
            images_per_second=12.5, num_params=1234),
    ]  # fmt: skip
    text = format_leaderboard(rows, sort_metric="log_loss")
    assert text == EXPECTED_LOG_LOSS_TABLE


EXPECTED_WIDE_TABLE = """\
                   val                   val                            n  single
#  model       bal.acc         95% CI     F1  img/s  params      C  train   class  precision      status  reason
--------------------------------------------------------------------------------------------------------------------
1  resnet18      0.900  [0.870,0.930]  0.890    850   11.7M  0.316    120      no  bfloat16    *  ok      –
   broken_net        –              –      –      –       –      –      –       –  –              failed  no weights

= tied with the best on val bal.acc (paired bootstrap, 95%)
* Pareto front: no other model is both better on val bal.acc and faster"""


def test_wide_table_shows_every_column_with_a_value() -> None:
    rows = [
        _ok("resnet18", 0.9, val_balanced_accuracy_low=0.87,
            val_balanced_accuracy_high=0.93, val_f1=0.89, val_roc_auc=None,
            val_ece=NAN, images_per_second=850.0, num_params=11_689_512,
            chosen_C=0.31623, num_train=120, single_class=False,
            precision="bfloat16", tied_with_best=False, pareto=True),
        {"model": "broken_net", "status": "failed", "reason": "no weights"},
    ]  # fmt: skip
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy", wide=True)
    assert text == EXPECTED_WIDE_TABLE


def test_wide_table_has_no_width_limit_and_adds_unknown_keys() -> None:
    rows = _board()
    rows[1]["val_unavailable"] = "roc_auc: only one class ('neg') in this split"
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy", wide=True)
    header = text.splitlines()[1]
    assert "val_unavailable" in header
    assert "vit_small_patch14_dinov2.lvd142m_ft_in1k_extra" in text
    assert "batch 12 of 40 (try --max-seconds or a smaller model)" in text
    assert max(len(line) for line in text.splitlines()) > 100


@pytest.mark.parametrize(
    "sort_metric", ["val_balanced_accuracy", "val_f1", "val_log_loss", "test_ece"]
)
def test_every_line_fits_100_columns(sort_metric: str) -> None:
    rows = [  # ranks of three digits
        {**row, "model": f"{row['model']}_{index}"}
        for index, row in enumerate(_board() * 40)
    ]
    text = format_leaderboard(rows, sort_metric=sort_metric)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" in text


def test_narrow_width_shortens_names_no_further_than_twelve_characters() -> None:
    text = format_leaderboard(_board(), sort_metric="val_f1", width=60)
    assert "1  vit_s…_extra  " in text
    # The other key columns alone need more than 60 columns; they are not cut.
    assert max(len(line) for line in text.splitlines()) > 60


def test_shorten_middle_keeps_start_and_distinguishing_end() -> None:
    name = "vit_small_patch14_dinov2.lvd142m"
    assert _shorten_middle(name, 28) == "vit_small_pat…dinov2.lvd142m"
    assert _shorten_middle(name, 32) == name
    assert len(_shorten_middle(name, 13)) == 13


def test_no_marks_column_or_legend_before_marking() -> None:
    rows = [_ok("a", 0.9, images_per_second=10.0), _ok("b", 0.8)]
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert "=" not in text and "*" not in text and "Pareto" not in text
    assert text.splitlines()[-1].startswith("2  b")


def test_marks_read_from_a_csv_ignore_nan() -> None:
    rows = [_ok("a", 0.9, tied_with_best=NAN, pareto=True), _ok("b", 0.8, pareto=NAN)]
    lines = format_leaderboard(rows, sort_metric="val_balanced_accuracy").splitlines()
    assert lines[3].endswith("   *") and lines[4].endswith("–")


def test_column_sets() -> None:
    assert KEY_COLUMNS[:2] == ("rank", "model") and "marks" in KEY_COLUMNS
    assert set(KEY_COLUMNS) <= set(WIDE_COLUMNS)
    assert {"val_ece_low", "tied_with_best"}.isdisjoint(WIDE_COLUMNS)


def test_sort_rows_best_first_then_missing_then_failed() -> None:
    rows = [
        {"model": "x", "status": "failed", "val_balanced_accuracy": 0.99},
        _ok("d", NAN),
        _ok("b", 0.7),
        _ok("c", None),
        _ok("a", 0.7),
        _ok("e", 0.9),
        {"model": "w", "status": "timed out"},
    ]
    ordered = sort_rows(rows, metric="val_balanced_accuracy")
    assert [row["model"] for row in ordered] == ["e", "a", "b", "c", "d", "w", "x"]
    assert sort_rows(rows, metric="balanced_accuracy") == ordered


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("val_log_loss", ["b", "c", "a"]),
        ("log_loss", ["b", "c", "a"]),
        ("test_ece", ["a", "b", "c"]),
        ("val_roc_auc", ["a", "c", "b"]),
        ("images_per_second", ["c", "a", "b"]),
        ("latency_ms", ["b", "a", "c"]),
    ],
)
def test_sort_direction_follows_the_column(metric: str, expected: list[str]) -> None:
    rows = [
        _ok("a", None, val_log_loss=0.9, test_ece=0.01, val_roc_auc=0.9,
            images_per_second=50.0, latency_ms=2.0),
        _ok("b", None, val_log_loss=0.1, test_ece=0.05, val_roc_auc=0.5,
            images_per_second=10.0, latency_ms=1.0),
        _ok("c", None, val_log_loss=0.5, test_ece=0.09, val_roc_auc=0.6,
            images_per_second=90.0, latency_ms=3.0),
    ]  # fmt: skip
    assert [row["model"] for row in sort_rows(rows, metric=metric)] == expected


def _pareto_rows() -> list[dict[str, Any]]:
    return [
        _ok("a", 0.9, images_per_second=100.0, val_log_loss=0.3, latency_ms=5.0),
        _ok("b", 0.8, images_per_second=200.0, val_log_loss=0.4, latency_ms=2.0),
        _ok("c", 0.8, images_per_second=100.0, val_log_loss=0.5, latency_ms=5.0),
        _ok("d", 0.9, images_per_second=100.0, val_log_loss=0.3, latency_ms=5.0),
        _ok("e", None, images_per_second=900.0, val_log_loss=None),
        {"model": "f", "status": "failed", "val_balanced_accuracy": 1.0,
         "images_per_second": 1000.0},
        _ok("g", 0.7, images_per_second=500.0, val_log_loss=0.2, latency_ms=9.0),
    ]  # fmt: skip


def test_mark_pareto_known_front() -> None:
    rows = _pareto_rows()
    mark_pareto(rows, quality="val_balanced_accuracy")
    front = {row["model"] for row in rows if row["pareto"]}
    # c is beaten by a (and b); a and d are equal on both and both stay.
    assert front == {"a", "b", "d", "g"}
    assert all(isinstance(row["pareto"], bool) for row in rows)


def test_mark_pareto_respects_lower_is_better() -> None:
    rows = _pareto_rows()
    mark_pareto(rows, quality="log_loss")
    # g has the lowest loss and is the fastest row with a loss: it beats every other.
    assert {row["model"] for row in rows if row["pareto"]} == {"g"}

    mark_pareto(rows, quality="val_balanced_accuracy", speed="latency_ms")
    assert {row["model"] for row in rows if row["pareto"]} == {"a", "b", "d"}


def _predictions() -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    perfect = np.eye(2)[y] * 0.8 + 0.1
    near = perfect.copy()
    near[:3] = near[:3, ::-1]  # three mistakes
    coin = rng.dirichlet(np.ones(2), 300)
    return y, {
        "perfect": (y, perfect),
        "near": (y, near),
        "coin": (y, coin),
        "twin": (y, perfect.copy()),
    }


def test_mark_ties_known_answer() -> None:
    _, predictions = _predictions()
    rows = [
        _ok("coin", 0.5),
        _ok("near", 0.99),
        _ok("perfect", 1.0),
        _ok("twin", 1.0),
        {"model": "broken", "status": "failed"},
    ]
    mark_ties(rows, metric="val_balanced_accuracy", predictions=predictions, positive=1)
    tied = {row["model"]: row["tied_with_best"] for row in rows}
    # "perfect" sorts before its twin by name, so it is the reference.
    assert tied == {
        "coin": False,
        "near": True,
        "perfect": False,
        "twin": True,
        "broken": False,
    }


def test_mark_ties_without_predictions_warns(caplog: pytest.LogCaptureFixture) -> None:
    _, predictions = _predictions()
    rows = [_ok("resumed", 1.0), _ok("perfect", 1.0), _ok("coin", 0.5)]
    with caplog.at_level(logging.WARNING, logger="lazyvision.leaderboard"):
        mark_ties(rows, metric="balanced_accuracy", predictions=predictions, positive=1)
    assert [row["tied_with_best"] for row in rows] == [False, False, False]
    assert "no predictions for resumed" in caplog.text


def test_mark_ties_errors() -> None:
    y, predictions = _predictions()
    predictions["near"] = (y[::-1].copy(), predictions["near"][1])
    rows = [_ok("perfect", 1.0), _ok("near", 0.99)]
    with pytest.raises(DataError, match="predictions for 'near' are on other images"):
        mark_ties(rows, metric="val_balanced_accuracy", predictions=predictions,
                  positive=1)  # fmt: skip
    with pytest.raises(DataError, match="metric 'images_per_second' is not a split"):
        mark_ties(rows, metric="images_per_second", predictions={}, positive=1)


def test_missing_values_show_a_dash() -> None:
    rows = [_ok("a", math.nan, val_f1=None, images_per_second=NAN)]
    line = format_leaderboard(rows, sort_metric="val_balanced_accuracy").splitlines()[3]
    assert line.split() == ["1", "a", "–", "–", "–", "–", "–", "–"]
