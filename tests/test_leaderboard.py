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
    EARLIER_SPEED,
    KEY_COLUMNS,
    WIDE_COLUMNS,
    _shorten_middle,
    apply_limits,
    format_leaderboard,
    mark_pareto,
    mark_ties,
    shorten_name,
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
                                                       val                   val
#  model                                           bal.acc         95% CI     F1  img/s  params
---------------------------------------------------------------------------------------------------
1  vit_small_patch14_dinov2.lvd142m_ft_in1k_extra    0.912  [0.881,0.940]  0.905    123   22.1M   *
2  resnet18                                          0.900  [0.870,0.930]  0.890    850   11.7M  =*
3  pixels                                            0.600  [0.550,0.650]  0.580   9100       0   *
4  efficientnet_b0                                       –              –      –   4.57    5.3M
   broken_net                                      failed: WeightsError: no weights for broken_net
   convnext_tiny                                   timed out: over the 600 s budget while extractin…

= tied with the best on val bal.acc (paired bootstrap, 95%)
* Pareto front: no other model is both better on val bal.acc and faster
not shown, to fit 100 columns: test bal.acc, val AUC; --wide shows them"""


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


def test_legend_names_the_precision_of_every_speed_shown() -> None:
    def rows(second: str) -> list[dict[str, Any]]:
        return [
            _ok("net_a", 0.9, images_per_second=120.0, num_params=3_400_000,
                precision="bfloat16"),
            _ok("net_b", 0.8, images_per_second=80.0, num_params=4_800_000,
                precision=second),
            # Raw pixels are always float32, whatever the networks ran in.
            _ok("pixels", 0.2, images_per_second=9000.0, num_params=0,
                precision="float32"),
        ]  # fmt: skip

    speed = "img/s: images embedded per second after the first batch"
    same = format_leaderboard(rows("bfloat16"), sort_metric="val_balanced_accuracy")
    mixed = format_leaderboard(rows("float32"), sort_metric="val_balanced_accuracy")
    assert same.splitlines()[-1] == f"{speed}, in bfloat16 (pixels in float32)"
    assert mixed.splitlines()[-1] == f"{speed}, in float32 (net_a in bfloat16)"
    networks = rows("bfloat16")[:2]
    alone = format_leaderboard(networks, sort_metric="val_balanced_accuracy")
    assert alone.splitlines()[-1] == f"{speed}, in bfloat16"
    # One network and the pixels: the pixels are the exception, though ranked first.
    pair = [rows("bfloat16")[0], {**rows("bfloat16")[2], "val_balanced_accuracy": 1}]
    both = format_leaderboard(pair, sort_metric="val_balanced_accuracy")
    assert both.splitlines()[-1] == f"{speed}, in bfloat16 (pixels in float32)"
    wide = format_leaderboard(
        rows("bfloat16"), sort_metric="val_balanced_accuracy", wide=True
    )
    assert "img/s:" not in wide  # the precision column says it there


def test_legend_refers_to_wide_when_the_precisions_are_too_many_to_name() -> None:
    rows = [
        _ok(f"convnext_tiny_{index}", 0.9 - index / 100, images_per_second=100.0,
            num_params=1_000_000, precision="bfloat16" if index < 5 else "float32")
        for index in range(9)
    ]  # fmt: skip
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[-1].endswith(", each in its own precision (--wide)")


def _speeds_board() -> list[dict[str, Any]]:
    """A speed this run timed, one an earlier run timed, and none."""
    return [
        _ok("resnet18", 0.9, images_per_second=850.0, latency_ms=1.176,
            num_params=11_689_512, precision="float32", speed_source="this run",
            num_timed=104, pareto=True),
        _ok("efficientnet_b0", 0.8, images_per_second=566.0, latency_ms=1.767,
            num_params=5_300_000, precision="float32", speed_source="earlier run",
            num_timed=2000, pareto=False),
        _ok("convnext_tiny", 0.7, images_per_second=None, num_params=28_600_000,
            precision="float32", pareto=False),
        _ok("tf_efficientnet_lite2", 0.6, images_per_second=12.65, latency_ms=79.05,
            num_params=6_100_000, precision="float32", speed_source="earlier run",
            num_timed=300),
    ]  # fmt: skip


EXPECTED_EARLIER_SPEED_TABLE = """\
                              val          val  val
#  model                  bal.acc  95% CI   F1  AUC  img/s  params
----------------------------------------------------------------------
1  resnet18                 0.900       –    –    –   850    11.7M   *
2  efficientnet_b0          0.800       –    –    –   566†    5.3M
3  convnext_tiny            0.700       –    –    –     –    28.6M
   tf_efficientnet_lite2  excluded: latency 79.05 ms > 60 ms limit (timed by an earlier run)

* Pareto front: no other model is both better on val bal.acc and faster
img/s: images embedded per second after the first batch, in float32
† timed by an earlier run with the same batch size, device, precision and threads"""


def test_a_speed_an_earlier_run_timed_is_marked_and_explained() -> None:
    rows = _speeds_board()
    apply_limits(rows, max_latency_ms=60)
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert text == EXPECTED_EARLIER_SPEED_TABLE

    wide = format_leaderboard(rows, sort_metric="val_balanced_accuracy", wide=True)
    lines = wide.splitlines()
    assert lines[1].split()[5:9] == ["img/s", "ms", "timed", "by"]
    assert "566†    1.77†  earlier run   2000" in lines[4]
    assert "850     1.18   this run       104" in lines[3]
    assert lines[-1].startswith("† timed by an earlier run")


def test_the_speed_mark_reads_the_source_extraction_writes() -> None:
    from lazyvision.features import EARLIER_RUN

    assert EARLIER_SPEED == EARLIER_RUN


def test_no_speed_mark_when_every_speed_is_this_runs() -> None:
    rows = [row for row in _speeds_board() if row.get("speed_source") != "earlier run"]
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert "†" not in text
    assert "  850   11.7M" in text


def test_sorting_by_speed_explains_marks_on_the_quality_they_judge() -> None:
    rows = [
        _ok("slow_good", 0.9, images_per_second=300.0, num_params=5_000_000,
            precision="float32", tied_with_best=False, pareto=True),
        _ok("slow_tied", 0.88, images_per_second=310.0, num_params=5_000_000,
            precision="float32", tied_with_best=True, pareto=True),
        _ok("fast_bad", 0.2, images_per_second=20000.0, num_params=0,
            precision="float32", tied_with_best=False, pareto=True),
    ]  # fmt: skip

    text = format_leaderboard(rows, sort_metric="images_per_second")

    order = [line.split()[1] for line in text.splitlines()[3:6]]
    assert order == ["fast_bad", "slow_tied", "slow_good"]
    assert "= tied with the best on val bal.acc (paired bootstrap, 95%)" in text
    assert "better on val bal.acc and faster" in text
    assert "on img/s" not in text


EXPECTED_WIDE_TABLE = """\
                   val                   val                                n  single
#  model       bal.acc         95% CI     F1  img/s  params          C  train   class  precision  status  reason
--------------------------------------------------------------------------------------------------------------------
1  resnet18      0.900  [0.870,0.930]  0.890    850   11.7M   *  0.316    120      no  bfloat16   ok      –
   broken_net        –              –      –      –       –          –      –       –  –          failed  no weights

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


def test_wide_table_puts_the_marks_where_the_key_table_does() -> None:
    narrow = format_leaderboard(_board(), sort_metric="val_balanced_accuracy")
    wide = format_leaderboard(_board(), sort_metric="val_balanced_accuracy", wide=True)
    for text in (narrow, wide):
        lines = text.splitlines()
        assert lines[4].startswith("2  resnet18")
        assert "850   11.7M  =*" in lines[4]
    assert KEY_COLUMNS[-2:] == ("num_params", "marks")
    marks = WIDE_COLUMNS.index("marks")
    assert WIDE_COLUMNS[marks - 1] == "num_params"


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


def test_narrow_width_leaves_out_metric_columns_but_never_cuts_a_name() -> None:
    text = format_leaderboard(_board(), sort_metric="val_f1", width=60)
    assert "1  vit_small_patch14_dinov2.lvd142m_ft_in1k_extra  0.905  " in text
    assert text.splitlines()[1].split() == [
        "#",
        "model",
        "F1",
        "95%",
        "CI",
        "img/s",
        "params",
    ]
    assert text.splitlines()[-1] == (
        "not shown, to fit 60 columns: test bal.acc, val AUC, val bal.acc; "
        "--wide shows them"
    )


@pytest.mark.parametrize("sort_metric", ["val_log_loss", "test_ece", "val_accuracy"])
def test_another_sort_metric_keeps_timm_names_whole_within_100_columns(
    sort_metric: str,
) -> None:
    """The sort metric and its interval take room; a key column gives it up."""
    names = [
        "vit_small_patch14_dinov2.lvd142m",
        "convnext_tiny.fb_in22k_ft_in1k@random",
        "tf_efficientnet_lite0",
    ]
    rows = [
        _ok(name, 0.9 - index / 10, val_f1=0.8, val_roc_auc=0.95,
            test_balanced_accuracy=0.85, images_per_second=123.4,
            num_params=22_056_000, pareto=True,
            **{sort_metric: 0.2 + index, f"{sort_metric}_low": 0.1234,
               f"{sort_metric}_high": 13.402})
        for index, name in enumerate(names)
    ]  # fmt: skip
    text = format_leaderboard(rows, sort_metric=sort_metric)
    for name in names:
        assert f"  {name}  " in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[-1].startswith("not shown, to fit 100 columns: ")


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


def _repeated(
    model: str, value: float, mean: float, std: float, **values: Any
) -> dict[str, Any]:
    """An ok row scored on five validation splits."""
    key = "val_balanced_accuracy"
    row = {
        f"{key}_low": value - 0.03,
        f"{key}_high": value + 0.02,
        f"{key}_mean": mean,
        f"{key}_std": std,
        f"{key}_min": mean - 2 * std,
        f"{key}_max": mean + 2 * std,
        "num_repeats": 5,
        "tied_with_best": False,
        "pareto": True,
        "single_class": False,
    }
    return _ok(model, value, **{**row, **values})


def _limited_board() -> list[dict[str, Any]]:
    return [
        _repeated("convnext_small.fb_in22k_ft_in1k@random", 0.62, 0.6, 0.03,
                  latency_ms=3.0, num_params=50_220_000, images_per_second=333.0),
        _repeated("resnet18", 0.9, 0.88, 0.021, latency_ms=1.2,
                  num_params=11_689_512, images_per_second=850.0),
        _repeated("vit_base_patch16_224", 0.95, 0.94, 0.012, latency_ms=12.34,
                  num_params=86_567_656, images_per_second=81.0),
        _repeated("pixels", 0.1, 0.1, 0.0, latency_ms=0.1, num_params=0,
                  images_per_second=9100.0, single_class=True),
        {"model": "broken_net", "status": "failed", "reason": "no weights"},
    ]  # fmt: skip


def test_apply_limits_known_answers() -> None:
    rows = _limited_board()
    apply_limits(rows, max_latency_ms=10, max_params=50_000_000)
    outcome = {row["model"]: (row["status"], row.get("reason")) for row in rows}
    assert outcome == {
        "convnext_small.fb_in22k_ft_in1k@random": (
            "excluded", "50.2M parameters > 50M limit"),
        "resnet18": ("ok", None),
        "vit_base_patch16_224": (
            "excluded", "latency 12.34 ms > 10 ms limit; 86.6M parameters > 50M limit"),
        "pixels": ("ok", None),
        "broken_net": ("failed", "no weights"),
    }  # fmt: skip


def test_apply_limits_edges(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        _ok("at_limit", 0.9, latency_ms=10.0, num_params=1_000_000),
        _ok("just_over", 0.9, latency_ms=10.04, num_params=1_000_001),
        _ok("unknown", 0.9, latency_ms=None, num_params=NAN),
    ]
    with caplog.at_level(logging.WARNING, logger="lazyvision.leaderboard"):
        apply_limits(rows, max_latency_ms=10, max_params=1e6)
    assert [row["status"] for row in rows] == ["ok", "excluded", "ok"]
    # Counts that round alike are written out in full.
    assert rows[1]["reason"] == (
        "latency 10.04 ms > 10 ms limit; 1,000,001 parameters > 1,000,000 limit"
    )
    assert "unknown: latency_ms unknown" in caplog.text
    assert "unknown: num_params unknown" in caplog.text


def test_apply_limits_without_limits_changes_nothing() -> None:
    rows = _limited_board()
    apply_limits(rows)
    assert rows == _limited_board()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"max_latency_ms": -1.0},
            r"max_latency_ms must be a number of 0 or more.*-1\.0",
        ),
        ({"max_params": "25M"}, r"max_params must be a number of 0 or more.*'25M'"),
        ({"max_params": NAN}, r"max_params must be a number of 0 or more.*nan"),
    ],
)
def test_apply_limits_rejects_bad_limits(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        apply_limits(_limited_board(), **limits)


def test_excluded_rows_sort_after_ranked_rows_and_before_failed_ones() -> None:
    rows = [
        {"model": "x", "status": "failed", "val_balanced_accuracy": 0.99},
        {**_ok("slow", 0.95), "status": "excluded"},
        _ok("b", 0.7),
        {**_ok("big", 0.97), "status": "excluded"},
        _ok("c", None),
        {**_ok("odd", None), "status": "excluded"},
    ]
    ordered = sort_rows(rows, metric="val_balanced_accuracy")
    assert [row["model"] for row in ordered] == ["b", "c", "big", "slow", "odd", "x"]


EXPECTED_LIMITED_TABLE = """\
                                               val                      splits
#  model                                   bal.acc         95% CI     mean±std  img/s  params
--------------------------------------------------------------------------------------------------
1  resnet18                                  0.900  [0.870,0.920]  0.880±0.021    850   11.7M   *
2  pixels                                    0.100  [0.070,0.120]  0.100±0.000   9100       0   *!
   vit_base_patch16_224                    excluded: latency 12.34 ms > 10 ms limit; 86.6M paramete…
   convnext_small.fb_in22k_ft_in1k@random  excluded: 50.2M parameters > 50M limit
   broken_net                              failed: no weights

* Pareto front: no other model is both better on val bal.acc and faster
! predicts the same class for every val image: the head learned nothing
mean±std: val bal.acc over 5 redrawn validation splits
not shown, to fit 100 columns: val AUC, val F1; --wide shows them"""


def test_limits_repeats_and_single_class_table_matches_expected_text() -> None:
    rows = _limited_board()
    for row in rows:
        row.pop("tied_with_best", None)
    apply_limits(rows, max_latency_ms=10, max_params=50_000_000)
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert text == EXPECTED_LIMITED_TABLE


def test_repeats_table_fits_100_columns_and_wide_adds_min_max() -> None:
    rows = [
        {
            **row,
            "model": f"{row['model'].partition('.')[0]}_{index}",
            "test_balanced_accuracy": 0.5,
        }
        for index, row in enumerate(_limited_board() * 40)
    ]
    text = format_leaderboard(rows, sort_metric="val_balanced_accuracy")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "mean±std" in text and "min..max" not in text

    wide = format_leaderboard(rows, sort_metric="val_balanced_accuracy", wide=True)
    assert "0.880±0.021  0.838..0.922" in wide
    assert "val_balanced_accuracy_mean" not in wide  # drawn, not an extra column


def test_shorten_name_keeps_a_random_suffix_whole() -> None:
    name = "tf_efficientnet_lite0@random"
    assert shorten_name(name, 20) == "tf_eff…_lite0@random"
    assert shorten_name(name, 28) == name
    assert shorten_name(name, 12) == "tf_ef…random"  # too narrow for the suffix
    assert shorten_name("vit_small_patch14_dinov2.lvd142m", 28) == _shorten_middle(
        "vit_small_patch14_dinov2.lvd142m", 28
    )


def test_tiny_val_ties_identical_twins_and_cannot_tell_the_rest() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])  # two images a class: resamples often lack one
    good = np.eye(3)[y] * 0.7 + 0.1
    other = np.roll(good, 1, axis=0)
    predictions = {"good": (y, good), "twin": (y, good.copy()), "other": (y, other)}
    rows = [_ok("good", 1.0), _ok("twin", 1.0), _ok("other", 0.5)]
    mark_ties(
        rows, metric="val_balanced_accuracy", predictions=predictions, positive=None
    )
    assert [row["tied_with_best"] for row in rows] == [False, True, None]

    for row in rows:
        row["pareto"] = False
    lines = format_leaderboard(rows, sort_metric="val_balanced_accuracy").splitlines()
    assert [line[-1] for line in lines[3:6]] == ["–", "=", "?"]
    assert lines[-2].startswith("= tied with the best")
    assert lines[-1].startswith("? cannot tell whether tied with the best")
    assert not any(line.startswith("* ") for line in lines)  # no row on the front
