"""Tests for the HTML report, on run folders written here the way the runner does."""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    roc_auc_score,
)

from lazyvision.check import check_dataset
from lazyvision.cli import main
from lazyvision.data import load_dataset
from lazyvision.errors import DataError
from lazyvision.report import write_report
from lazyvision.runner import Settings, rank
from lazyvision.sample import write_digits_sample

SCRIPT_LABEL = "<script>alert(1)</script>"
ESCAPED_LABEL = "&lt;script&gt;alert(1)&lt;/script&gt;"
FAILED_MODEL = "convnext_<b>tiny</b>"
FAILED_REASON = "WeightsError: no weights for 'convnext_<b>tiny</b>' offline"
IMAGES_PER_CLASS = 12


class _Tags(HTMLParser):
    """Collects every tag and the addresses its attributes point at."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.addresses: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.addresses += [v or "" for k, v in attrs if k in ("src", "href")]


def _plain(text: str) -> str:
    """The report without the break points that model names carry."""
    return text.replace("<wbr>", "")


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


def _write_images(folder: Path, digits: Sequence[int]) -> list[tuple[str, Path, int]]:
    """Real PNG files of handwritten digits: (split, path, class index) each."""
    images, targets = load_digits(return_X_y=True)
    samples = []
    for index, digit in enumerate(digits):
        rows = np.flatnonzero(targets == digit)[: 2 * IMAGES_PER_CLASS]
        for number, row in enumerate(rows):
            split = "val" if number < IMAGES_PER_CLASS else "test"
            pixels = (images[row].reshape(8, 8) * 255 / 16).astype(np.uint8)
            path = folder / f"{split}_{digit}_{number}.png"
            Image.fromarray(pixels).resize((32, 32), Image.NEAREST).save(path)
            samples.append((split, path, index))
    return samples


def _metrics(truth: np.ndarray, proba: np.ndarray, num_classes: int) -> dict[str, Any]:
    guess = proba.argmax(axis=1)
    binary = num_classes == 2
    confidence = proba.max(axis=1)
    values: dict[str, float | None] = {
        "accuracy": accuracy_score(truth, guess),
        "balanced_accuracy": balanced_accuracy_score(truth, guess),
        "f1": f1_score(truth, guess, average="binary" if binary else "macro"),
        "roc_auc": roc_auc_score(truth, proba[:, 1])
        if binary
        else roc_auc_score(truth, proba, multi_class="ovr"),
        "pr_auc": average_precision_score(truth, proba[:, 1]) if binary else None,
        "log_loss": log_loss(truth, proba, labels=list(range(num_classes))),
        "ece": abs(float(confidence.mean()) - float((guess == truth).mean())),
    }
    result: dict[str, Any] = {}
    for name, value in values.items():
        result[name] = value
        result[f"{name}_low"] = None if value is None else max(value - 0.04, 0.0)
        bound = float("inf") if name == "log_loss" else 1.0
        result[f"{name}_high"] = None if value is None else min(value + 0.04, bound)
    return result


def _write_run(
    folder: Path,
    *,
    classes: Sequence[str],
    digits: Sequence[int],
    positive: str | None,
    models: Sequence[dict[str, Any]],
) -> Path:
    """A run folder as the runner writes it; returns the folder."""
    run_dir = folder / "run"
    (run_dir / "models").mkdir(parents=True)
    image_dir = folder / "images"
    image_dir.mkdir()
    samples = _write_images(image_dir, digits)
    truth = np.array([index for _, _, index in samples])
    rng = np.random.default_rng(0)

    rows = []
    for spec in models:
        row: dict[str, Any] = {
            "model": spec["model"],
            "status": spec.get("status", "ok"),
            "reason": spec.get("reason"),
            "weights_source": "timm hub",
            "architecture": spec["model"],
            "input_size": "224x224",
            "preprocessing": "224px bicubic crop 0.875 mean(0.485,0.456,0.406)",
            "precision": "bfloat16",
            "embedding_size": 512,
            "num_params": 11_689_512,
            "images_per_second": spec.get("speed"),
            "latency_ms": None if spec.get("speed") is None else 1000 / spec["speed"],
            "chosen_C": 0.1,
            "extract_seconds": 12.5,
            "head_fit_seconds": 0.42,
            "num_train": 200,
            "num_val": int(sum(s == "val" for s, _, _ in samples)),
            "num_test": 0,
            "single_class": False,
            "tied_with_best": spec.get("tied", False),
            "pareto": spec.get("pareto", False),
        }
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", spec["model"])
        model_dir = run_dir / "models" / safe
        model_dir.mkdir()
        if row["status"] == "ok":
            logits = spec["quality"] * np.eye(len(classes))[truth]
            logits = logits + rng.normal(size=logits.shape)
            for wrong in spec.get("confidently_wrong", ()):
                logits[wrong] = 0.0
                logits[wrong, (truth[wrong] + 1) % len(classes)] = 8.0
            proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            splits = ("val", "test") if spec.get("has_test", True) else ("val",)
            keep = np.array([s in splits for s, _, _ in samples])
            for split in splits:
                rows_in_split = np.array([s == split for s, _, _ in samples])
                scores = _metrics(
                    truth[rows_in_split], proba[rows_in_split], len(classes)
                )
                row.update({f"{split}_{k}": v for k, v in scores.items()})
            row["num_test"] = int(sum(s == "test" for s, _, _ in samples)) * (
                "test" in splits
            )
            _write_predictions(
                model_dir / "predictions.csv",
                [s for s, k in zip(samples, keep, strict=True) if k],
                proba[keep],
                classes,
            )
        # Like the runner: a failure is kept in failed.json, never in row.json.
        row_name = "row.json" if row["status"] == "ok" else "failed.json"
        (model_dir / row_name).write_text(json.dumps(row))
        rows.append(row)

    rows.sort(
        key=lambda r: (r["status"] != "ok", -(r.get("val_balanced_accuracy") or 0))
    )
    (run_dir / "leaderboard.json").write_text(json.dumps(rows))

    def sample(split: str, path: Path, index: int) -> dict[str, str]:
        origin = f"{split}/{classes[index]}/{path.name}"
        return {
            "split": split,
            "origin": origin,
            "path": str(path),
            "label": classes[index],
        }

    per_class = dict.fromkeys(classes, IMAGES_PER_CLASS)
    dataset = {
        "source": str(image_dir),
        "layout": "split-csvs",
        "classes": list(classes),
        "splits": {
            "train": {
                "given": 201,
                "usable": 200,
                "per_class": dict.fromkeys(classes, 100),
            },
            "val": {"given": 24, "usable": 24, "per_class": per_class},
            "test": {"given": 24, "usable": 24, "per_class": per_class},
        },
        "sizes": {"width": {"min": 32, "median": 32, "max": 32}},
        "modes": {"L": 248},
        "formats": {"PNG": 248},
        "problems": [
            {
                "split": "train",
                "origin": "train.csv row 7",
                "path": str(image_dir / "broken.png"),
                "reason": "truncated",
            }
        ],
        "duplicates": [{"first": sample(*samples[0]), "second": sample(*samples[1])}],
        "near_duplicates": [],
        "near_duplicate_distance": 4,
        "copies_within_splits": [],
        "ignored": [],
        "notes": ["val was drawn from train: 20% stratified, seed 0"],
        "warnings": [],
    }
    (run_dir / "dataset.json").write_text(json.dumps(dataset))
    run = {
        "source": str(image_dir),
        "layout": "split-csvs",
        "classes": list(classes),
        "positive_label": positive,
        "sort_metric": "val_balanced_accuracy",
        "settings": {"batch_size": 64, "seed": 0, "C_grid": [0.01, 0.1, 1.0, 10.0]},
        "environment": {"python": "3.11.9", "torch": "2.14.1", "device": "cpu"},
        "notes": ["embeddings cached in ~/.cache/lazyvision"],
        "started": "2025-05-01T10:00:00",
        "finished": "2025-05-01T10:03:30",
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


def _write_predictions(
    path: Path,
    samples: Sequence[tuple[str, Path, int]],
    proba: np.ndarray,
    classes: Sequence[str],
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        head = ["split", "origin", "filepath", "label", "predicted"]
        writer.writerow(head + [f"p:{name}" for name in classes])
        for (split, image, index), row in zip(samples, proba, strict=True):
            writer.writerow(
                [
                    split,
                    f"{split}/{image.name}",
                    str(image),
                    classes[index],
                    classes[int(row.argmax())],
                    *[f"{p:.6f}" for p in row],
                ]
            )


BINARY_MODELS: list[dict[str, Any]] = [
    {
        "model": "resnet18",
        "quality": 5.0,
        "speed": 420.0,
        "pareto": True,
        "confidently_wrong": (0, 18),
    },
    {
        "model": "vit_tiny_patch16_224",
        "quality": 1.5,
        "speed": 150.0,
        "tied": True,
        "has_test": False,
    },
    {"model": "pixels", "quality": 0.7, "speed": 9000.0, "pareto": True},
    {"model": FAILED_MODEL, "status": "failed", "reason": FAILED_REASON},
]


@pytest.fixture
def binary_run(tmp_path: Path) -> Path:
    run_dir = _write_run(
        tmp_path,
        classes=[SCRIPT_LABEL, "seven"],
        digits=[0, 7],
        positive=SCRIPT_LABEL,
        models=BINARY_MODELS,
    )
    # The best backbone's most confident val mistake loses its file.
    (tmp_path / "images" / "val_0_0.png").unlink()
    return run_dir


@pytest.fixture
def multiclass_run(tmp_path: Path) -> Path:
    models = [
        {"model": "resnet18", "quality": 2.5, "speed": 420.0, "pareto": True},
        {"model": "pixels", "quality": 0.8, "speed": 9000.0, "pareto": True},
    ]
    return _write_run(
        tmp_path,
        classes=["007", "2", "NA"],
        digits=[0, 1, 2],
        positive=None,
        models=models,
    )


def test_binary_report_is_self_contained(binary_run: Path) -> None:
    path = write_report(binary_run)
    text = path.read_text(encoding="utf-8")
    parsed = _parse(text)

    assert path == binary_run / "report.html"
    assert "<script" not in text.lower()
    assert "script" not in parsed.tags
    assert not {"link", "iframe", "object", "embed"} & set(parsed.tags)
    assert "http://" not in text and "https://" not in text
    assert "url(" not in text and "@import" not in text
    assert all(a.startswith(("data:image/", "#")) for a in parsed.addresses)


def test_labels_names_and_reasons_are_escaped(binary_run: Path) -> None:
    text = write_report(binary_run).read_text(encoding="utf-8")

    assert ESCAPED_LABEL in text
    assert "<b>tiny</b>" not in text
    assert "convnext_&lt;b&gt;tiny&lt;/b&gt;" in text
    assert "no weights for &#x27;convnext_&lt;b&gt;tiny&lt;/b&gt;&#x27; offline" in text


def test_binary_report_has_the_plots(binary_run: Path) -> None:
    text = write_report(binary_run).read_text(encoding="utf-8")

    for element_id in ("scatter", "roc", "pr"):
        assert re.search(rf'<svg id="{element_id}" viewBox="[\d. ]+"', text)
    assert text.count("<polyline") == 6  # ROC and PR of the top three backbones
    assert 'class="confusion"' in text
    assert "images per second (log scale)" in text


def test_mistakes_show_thumbnails_or_the_missing_file_name(binary_run: Path) -> None:
    text = write_report(binary_run).read_text(encoding="utf-8")
    section = text.split('<section id="mistakes">')[1].split("</section>")[0]
    thumbnails = re.findall(r'<img src="(data:image/(?:jpeg|png);base64,[^"]+)"', text)

    assert 1 <= len(thumbnails) <= 12
    assert all(len(uri) < 20_000 for uri in thumbnails)
    assert "no image<br>val_0_0.png" in section
    assert section.index("val_0_0.png") < section.index("test_0_18.png")
    assert f"true: {ESCAPED_LABEL}" in section


def test_rows_without_test_metrics_and_leaderboard_marks(binary_run: Path) -> None:
    text = _plain(write_report(binary_run).read_text(encoding="utf-8"))

    assert "resnet18</div></td><td>test</td>" in text
    assert "vit_tiny_patch16_224</div></td><td>val</td>" in text
    assert "vit_tiny_patch16_224</div></td><td>test</td>" not in text
    assert re.search(r"\d\.\d{3}<br><small[^>]*>\d\.\d{3}–\d\.\d{3}</small>", text)
    assert 'class="badge tied"' in text and 'class="badge pareto"' in text


def test_dataset_protocol_and_environment_are_shown(binary_run: Path) -> None:
    text = write_report(binary_run).read_text(encoding="utf-8")

    assert "val was drawn from train" in text
    assert "train.csv row 7" in text and "truncated" in text
    assert "usable images" in text and "<td><b>images given</b></td>" in text
    assert "origin: val/" in text  # the duplicate pair
    assert "bfloat16" in text and "224px bicubic" in text
    assert "2.14.1" in text
    assert "took 3 min 30 s" in text
    assert "val balanced accuracy (higher is better)" in text


def test_a_run_that_read_every_result_back_says_so(binary_run: Path) -> None:
    rows = json.loads((binary_run / "leaderboard.json").read_text())
    for row in rows:
        row["num_computed"] = 0 if row["model"] == "pixels" else 48
    (binary_run / "leaderboard.json").write_text(json.dumps(rows))
    text = write_report(binary_run).read_text(encoding="utf-8")
    assert (
        "(took 3 min 30 s; 1 of 3 results read back from an earlier run or the cache)"
    ) in text

    for row in rows:
        row["num_computed"] = 0
    (binary_run / "leaderboard.json").write_text(json.dumps(rows))
    info = json.loads((binary_run / "run.json").read_text())
    info["finished"] = info["started"]
    (binary_run / "run.json").write_text(json.dumps(info))
    text = write_report(binary_run).read_text(encoding="utf-8")
    assert (
        "(took 0 s: every result read back from an earlier run or the cache)"
    ) in text


def test_multiclass_report_has_no_binary_curves(multiclass_run: Path) -> None:
    text = write_report(multiclass_run).read_text(encoding="utf-8")

    assert 'id="roc"' not in text and 'id="pr"' not in text
    assert 'id="scatter"' in text
    assert text.count('class="confusion"') == 4  # two backbones, val and test
    assert "<th>007</th>" in text and "<th>NA</th>" in text  # labels stay text
    assert "<script" not in text.lower()


def test_output_argument_chooses_the_file(binary_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "elsewhere.html"

    assert write_report(binary_run, output=output) == output
    assert output.is_file() and not (binary_run / "report.html").exists()


def test_rows_are_read_from_models_without_leaderboard_json(binary_run: Path) -> None:
    (binary_run / "leaderboard.json").unlink()
    (binary_run / "dataset.json").unlink()
    text = write_report(binary_run).read_text(encoding="utf-8")

    assert text.index("<div>resnet18</div>") < text.index("<div>pixels</div>")
    assert text.index("<div>pixels</div>") < text.index("convnext_&lt;b&gt;")
    assert "no weights for" in text
    assert "No dataset.json in the run folder." in text


def test_sorting_by_speed_still_plots_quality(binary_run: Path) -> None:
    info = json.loads((binary_run / "run.json").read_text())
    info["sort_metric"] = "images_per_second"
    (binary_run / "run.json").write_text(json.dumps(info))
    text = write_report(binary_run).read_text(encoding="utf-8")

    assert "images per second (higher is better)" in text
    assert "val balanced accuracy against speed" in text


def test_a_run_of_failed_rows_only_still_reports(tmp_path: Path) -> None:
    models = [{"model": FAILED_MODEL, "status": "failed", "reason": FAILED_REASON}]
    run_dir = _write_run(
        tmp_path, classes=["a", "b"], digits=[0, 1], positive="b", models=models
    )
    text = write_report(run_dir).read_text(encoding="utf-8")

    assert "no weights for" in text
    assert "<svg" not in text
    assert 'id="mistakes"' not in text and 'class="card"' not in text


def test_missing_run_json_is_an_error(binary_run: Path) -> None:
    (binary_run / "run.json").unlink()

    with pytest.raises(DataError, match=r"run\.json not found"):
        write_report(binary_run)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_folder_without_rows_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"classes": ["a", "b"]}))

    with pytest.raises(DataError, match="has no rows"):
        write_report(tmp_path)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("interrupted", r"interrupted \(Ctrl-C\) before any backbone finished"),
        ("running", r"has not finished a backbone: it is still running"),
    ],
)
def test_folder_of_a_run_stopped_before_any_backbone_says_so(
    tmp_path: Path, status: str, message: str
) -> None:
    info = {"classes": ["a", "b"], "status": status}
    (tmp_path / "run.json").write_text(json.dumps(info))
    (tmp_path / "leaderboard.json").write_text("[]")

    with pytest.raises(DataError, match=message + rf".*--output {tmp_path}"):
        write_report(tmp_path)


def _edit_leaderboard(run_dir: Path, **changes: dict[str, Any]) -> None:
    path = run_dir / "leaderboard.json"
    rows = json.loads(path.read_text())
    for row in rows:
        row.update(changes.get(row["model"], {}))
    path.write_text(json.dumps(rows))


def test_repeats_limits_and_unknown_ties_are_shown(binary_run: Path) -> None:
    key = "val_balanced_accuracy"
    spread = {f"{key}_mean": 0.9, f"{key}_std": 0.05, f"{key}_min": 0.81,
              f"{key}_max": 0.97, "num_repeats": 3}  # fmt: skip
    _edit_leaderboard(
        binary_run,
        resnet18=spread,
        vit_tiny_patch16_224={**spread, "tied_with_best": None},
        pixels={"status": "excluded", "reason": "latency 12.3 ms > 10 ms limit"},
    )
    info = json.loads((binary_run / "run.json").read_text())
    info["settings"].update(num_repeats=3, max_latency_ms=10, max_params=None)
    (binary_run / "run.json").write_text(json.dumps(info))
    text = _plain(write_report(binary_run).read_text(encoding="utf-8"))
    board = text.split('<section id="leaderboard">')[1].split("</section>")[0]

    assert "val balanced accuracy over 3 splits" in board
    assert '0.900 ± 0.050<br><small title="min–max">0.810–0.970</small>' in board
    assert "seeds 0–2" in board
    assert 'class="badge unknown">tie?' in board
    assert "<dt>Validation</dt><dd>drawn from train, 3 times" in text
    assert "<dt>Limits</dt><dd>latency ≤ 10 ms per image</dd>" in text
    # Excluded: after the ranked rows, unranked, with its values and reason.
    excluded = board.split('<tr class="excluded">')[1].split("</tr>")[0]
    assert excluded.startswith("<td>—</td>") and "pixels" in excluded
    assert "latency 12.3 ms &gt; 10 ms limit" in excluded
    assert board.index("vit_tiny_patch16_224") < board.index('class="excluded"')
    assert board.index('class="excluded"') < board.index('class="failed"')
    assert "2 ranked of 4, 1 excluded, 1 failed" in text


def test_excluded_rows_are_found_without_leaderboard_json(binary_run: Path) -> None:
    (binary_run / "leaderboard.json").unlink()
    info = json.loads((binary_run / "run.json").read_text())
    info["settings"]["max_latency_ms"] = 5.0  # only vit_tiny is slower
    (binary_run / "run.json").write_text(json.dumps(info))
    text = _plain(write_report(binary_run).read_text(encoding="utf-8"))

    assert text.count('<tr class="excluded">') == 1
    assert "latency 6.667 ms &gt; 5 ms limit" in text  # vit_tiny at 150 images/s


def test_names_wrap_at_separators_and_pairs_show_thumbnails(binary_run: Path) -> None:
    text = write_report(binary_run).read_text(encoding="utf-8")

    assert "vit_<wbr>tiny_<wbr>patch16_<wbr>224" in text
    dataset = text.split('<section id="dataset">')[1].split("</section>")[0]
    assert "1 pair of files with the same bytes in different splits." in dataset
    assert "The 1 pair</summary>" in dataset
    # The fixture deleted the first file of the pair.
    assert dataset.count('<div class="sample"><img src="data:image/') == 1
    assert '<span class="nothumb">no image</span>' in dataset


def _save_picture(path: Path, seed: int) -> Path:
    """A smooth random picture, so that only byte copies match each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), np.uint8)
    Image.fromarray(coarse).resize((32, 32), Image.Resampling.BICUBIC).save(path)
    return path


def _dataset_part(run_dir: Path, data: Path) -> str:
    """The report's dataset section, after checking ``data`` as a run does."""
    report = check_dataset(load_dataset(data))
    (run_dir / "dataset.json").write_text(json.dumps(report.to_dict()))
    text = write_report(run_dir).read_text(encoding="utf-8")
    return text.split('<section id="dataset">')[1].split("</section>")[0]


def test_copies_within_a_split_are_a_finding_of_their_own(
    binary_run: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    for index, (split, label) in enumerate(
        [("train", "a"), ("train", "b"), ("val", "a"), ("val", "b")]
    ):
        _save_picture(data / split / label / f"{index}.png", seed=index)
    copy = data / "train" / "a" / "copy.png"
    copy.write_bytes((data / "train" / "a" / "0.png").read_bytes())

    found = _dataset_part(binary_run, data)
    assert "<h3>Copies within a split</h3>" in found
    assert "origin: train/a/0.png" in found and "origin: train/a/copy.png" in found
    assert not re.search(r"None found: [^<]*copies within a split", found)

    copy.unlink()
    clean = _dataset_part(binary_run, data)
    assert "<h3>Copies within a split</h3>" not in clean
    assert re.search(r"None found: [^<]*copies within a split", clean)
    # The raw key never reaches the table of sizes, modes and formats.
    for section in (found, clean):
        assert "copies_within_splits" not in section


def test_one_file_in_two_splits_is_named_with_both_labels(
    binary_run: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    rows = {
        "train": [("img/0.png", "a"), ("img/1.png", "b"), ("img/2.png", "a")],
        "val": [("img/3.png", "a"), ("img/2.png", "b")],
    }
    for split, files in rows.items():
        for file, _ in files:
            _save_picture(data / file, seed=int(Path(file).stem))
        lines = ["filepath,label", *(f"{file},{label}" for file, label in files)]
        (data / f"{split}.csv").write_text("\n".join(lines) + "\n")

    found = _dataset_part(binary_run, data)
    assert "1 file listed in two splits. A model is then scored" in found
    assert "The 1 pair</summary>" in found and "1 pairs" not in found
    assert "<th>note</th>" in found
    assert (
        "the same file in train and val; labelled &#x27;a&#x27; in train, "
        "&#x27;b&#x27; in val"
    ) in found


def test_mistakes_show_the_path_within_the_data_set(
    binary_run: Path, tmp_path: Path
) -> None:
    # Laid out like the demo: images/<label>/ beside splits/ whose CSVs list them.
    data = tmp_path / "data"
    deep = "a_folder_with_a_rather_long_name/and_another_one/val_3.png"
    files = [f"images/{label}/val_3.png" for label in ("0", "7")] + [deep]
    for seed, file in enumerate(files):
        _save_picture(data / file, seed=seed)
    (data / "splits").mkdir()
    info = json.loads((binary_run / "run.json").read_text())
    info["source"] = str(data / "splits")
    (binary_run / "run.json").write_text(json.dumps(info))
    _write_predictions(
        binary_run / "models" / "resnet18" / "predictions.csv",
        [("val", data / file, 1) for file in files],
        np.array([[0.99, 0.01], [0.98, 0.02], [0.97, 0.03]]),
        [SCRIPT_LABEL, "seven"],
    )

    text = write_report(binary_run).read_text(encoding="utf-8")
    section = text.split('<section id="mistakes">')[1].split("</section>")[0]
    shown = re.findall(r"<div><b>([^<]*)</b></div>", section)

    assert shown == [
        "../images/0/val_3.png",
        "../images/7/val_3.png",
        "…/and_another_one/val_3.png",
    ]
    assert f'title="{data / deep}"' in section


def test_pairs_show_each_file_by_its_path_within_the_data_set(
    binary_run: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    long_folder = "a_folder_with_a_rather_long_name_number"
    rows = {
        "train": [
            ("img/a&b/0001.png", "a"),
            ("img/x/1.png", "b"),
            (f"{long_folder}_one/deep/0001.png", "b"),
        ],
        "val": [
            ("img/c/0001.png", "a"),
            ("img/x/2.png", "b"),
            (f"{long_folder}_two/deep/0001.png", "b"),
        ],
    }
    # Each val file of name 0001.png is a byte copy of the train file above it.
    for seed, (train, val) in enumerate(zip(rows["train"], rows["val"], strict=True)):
        _save_picture(data / train[0], seed=seed)
        if val[0].endswith("0001.png"):
            (data / val[0]).parent.mkdir(parents=True)
            (data / val[0]).write_bytes((data / train[0]).read_bytes())
        else:
            _save_picture(data / val[0], seed=seed + 10)
    for split, files in rows.items():
        lines = ["filepath,label", *(f"{file},{label}" for file, label in files)]
        (data / f"{split}.csv").write_text("\n".join(lines) + "\n")

    found = _dataset_part(binary_run, data)
    shown = re.findall(r'<span title="[^"]*">([^<]*)</span>', found)

    assert shown == [
        "img/a&amp;b/0001.png",
        "img/c/0001.png",
        # Cut to their nearest folders, the two would read alike: shown whole.
        f"{long_folder}_one/deep/0001.png",
        f"{long_folder}_two/deep/0001.png",
    ]
    assert f'title="{data / "img" / "c" / "0001.png"}"' in found


def test_the_dataset_section_warns_of_what_rank_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    splits = write_digits_sample(tmp_path / "digits", num_per_class=6, classes=(0, 1))
    # A train digit again in val, shrunk a little and saved as a JPEG: the same
    # picture in other bytes.
    first = (splits / "train.csv").read_text().splitlines()[1]
    train_file, label = first.rsplit(",", 1)
    copy = splits.parent / "images" / label / "copy.jpg"
    with Image.open(splits / train_file) as picture:
        picture.resize((60, 60), Image.Resampling.BICUBIC).save(copy, quality=90)
    with (splits / "val.csv").open("a") as val:
        val.write(f"../images/{label}/copy.jpg,{label}\n")

    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="lazyvision"):
        rank(splits, models=["pixels"], output=run, settings=Settings(num_workers=0))
    warned = [r.getMessage() for r in caplog.records if r.name == "lazyvision.check"]
    assert len(warned) == 1 and "1 near-duplicate pair" in warned[0]

    # The report of the folder rank wrote, as `lazyvision report FOLDER` writes it.
    assert main(["report", str(run)]) == 0
    text = (run / "report.html").read_text(encoding="utf-8")
    section = text.split('<section id="dataset">')[1].split("</section>")[0]
    assert "<h3>Near duplicates</h3>" in section and "copy.jpg" in section
    found = section.split("<h3>Warnings</h3>")[1]
    assert "1 near-duplicate pair in different splits" in found
    assert not re.search(r"None found: [^<]*warnings", section)


def _killed_run(folder: Path, *, before: Sequence[str] = ()) -> Path:
    """A run folder as SIGKILL leaves it once pixels has finished, the runner's own.

    ``before`` are the backbones of an earlier, finished call on the folder.
    """
    splits = write_digits_sample(folder / "digits", num_per_class=6)
    run, settings = folder / "run", Settings(num_workers=0, num_resamples=0)
    if before:
        rank(splits, models=before, output=run, settings=settings)
    earlier = (run / "leaderboard.json").read_bytes() if before else None
    rank(splits, models=["pixels", "test_resnet@random"], output=run, settings=settings)
    # What a kill while test_resnet@random ran leaves: its row never written,
    # nor this call's leaderboard, and run.json as the start wrote it.
    for path in (run / "models" / "test_resnet_random").iterdir():
        path.unlink()
    (run / "leaderboard.csv").unlink()
    (run / "leaderboard.json").unlink()
    if earlier is not None:
        (run / "leaderboard.json").write_bytes(earlier)
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", finished=None)
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_report_of_a_run_that_never_ended_says_so_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _killed_run(tmp_path)

    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    text = _plain((run / "report.html").read_text(encoding="utf-8"))

    for said in (err, text):
        assert "not finished: run.json says the run in" in said
        assert "still going or was stopped without saving" in said
        assert "1 of the 2 backbones asked for has no row: test_resnet@random." in said
        assert f"--output {run}." in said
    header = text.split("</header>")[0]
    assert "<dt>Status</dt>" in header and "1 ranked of 1" in header


def test_report_of_a_run_that_never_ended_shows_what_it_finished_not_older_rows(
    tmp_path: Path,
) -> None:
    """The leaderboard on disk is an earlier call's: it lacks this call's rows."""
    run = _killed_run(tmp_path, before=["test_efficientnet@random"])

    write_report(run)
    header = _plain((run / "report.html").read_text(encoding="utf-8"))
    header = header.split("</header>")[0]

    assert "2 ranked of 2" in header  # pixels, and the earlier call's backbone
    assert "has no row: test_resnet@random." in header


def test_the_board_marks_the_speeds_an_earlier_run_timed(
    tmp_path: Path, digits_splits: Path
) -> None:
    settings = Settings(num_workers=0, num_resamples=0)
    for output in ("first", "again"):
        rank(
            digits_splits,
            models=["pixels", "test_resnet@random"],
            output=tmp_path / output,
            settings=settings,
        )
    first = write_report(tmp_path / "first").read_text(encoding="utf-8")
    again = write_report(tmp_path / "again").read_text(encoding="utf-8")

    assert "timed by an earlier run" not in first
    # Both backbones came back from the cache: their speed and latency are marked.
    assert again.count('title="timed by an earlier run"') == 4
    assert "timed by an earlier run with the same batch size" in _plain(again)
