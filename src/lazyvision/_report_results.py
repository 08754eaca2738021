"""Report sections on what the top backbones get right and wrong.

The binary ROC and precision-recall curves, the per-class confusion matrices and
scores, and the thumbnails of the most confident mistakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from lazyvision._html import esc, html_table, shorten, shorten_path, thumbnail_uri
from lazyvision._run_folder import Predictions, RunFolder
from lazyvision._svg import PALETTE, curve_svg, precision_steps
from lazyvision.check import relative_path

NUM_MISTAKES = 12
# Beyond this many classes a full matrix stops being readable on a laptop screen;
# the report lists the most frequent confusions instead.
MAX_MATRIX_CLASSES = 30
NUM_CONFUSIONS = 15


def curves_section(run: RunFolder, top: Sequence[tuple[str, Predictions]]) -> str:
    if len(run.classes) != 2 or run.positive is None:
        return ""
    positive = run.classes.index(run.positive)
    roc_lines, pr_lines, legend = [], [], []
    prevalence = None
    skipped = []
    for index, (model, predictions) in enumerate(top):
        rows = predictions.select("val")
        truth = predictions.label[rows] == run.positive
        score = predictions.proba[rows, positive]
        if truth.all() or not truth.any() or np.isnan(score).any():
            skipped.append(esc(model))
            continue
        color = PALETTE[index % len(PALETTE)]
        false_positive, true_positive, _ = roc_curve(truth, score)
        roc_lines.append((false_positive, true_positive, color))
        recall, precision = precision_steps(truth, score)
        pr_lines.append((recall, precision, color))
        prevalence = float(truth.mean())
        legend.append(
            f'<li><span class="swatch" style="background:{color}"></span>{esc(model)} '
            f"(ROC AUC {roc_auc_score(truth, score):.3f}, "
            f"AP {average_precision_score(truth, score):.3f})</li>"
        )
    if not roc_lines or prevalence is None:
        if not top:
            return ""
        return (
            '<p class="note">Not drawn: val holds a single class or lacks '
            "probabilities.</p>"
        )

    roc = curve_svg(
        roc_lines, "false positive rate", "true positive rate", "ROC curve", "roc"
    )
    pr = curve_svg(
        pr_lines,
        "recall",
        "precision",
        "precision–recall curve",
        "pr",
        steps=True,
        baseline=prevalence,
    )
    note = ""
    if skipped:
        names = ", ".join(skipped)
        note = f'<p class="note">Left out (single class on val): {names}.</p>'
    return (
        '<p class="note">'
        f"Top {len(roc_lines)} backbones on val; positive class "
        f"{esc(run.positive)}.</p>"
        f'<div class="plots"><figure>{roc}</figure><figure>{pr}</figure></div>'
        f'<ul class="legend">{"".join(legend)}</ul>{note}'
    )


def classes_section(run: RunFolder, top: Sequence[tuple[str, Predictions]]) -> str:
    blocks = []
    for index, (model, predictions) in enumerate(top):
        for split in ("val", "test"):
            rows = predictions.select(split)
            if rows.size == 0:
                continue
            labels = _labels(run, predictions.label[rows], predictions.predicted[rows])
            truth = [str(v) for v in predictions.label[rows]]
            guess = [str(v) for v in predictions.predicted[rows]]
            matrix = confusion_matrix(truth, guess, labels=labels)
            opened = " open" if index == 0 else ""
            blocks.append(
                f"<details{opened}><summary>{esc(model)}, {split} "
                f'({rows.size} images)</summary><div class="pair">'
                + _confusion_html(matrix, labels)
                + _per_class_html(truth, guess, labels)
                + "</div></details>"
            )
    if not blocks:
        return ""
    return (
        '<p class="note">Rows are the true class, columns the predicted class; a '
        "cell's shade is its share of the row (blue: right, orange: wrong).</p>"
        + "".join(blocks)
    )


def _labels(run: RunFolder, truth: np.ndarray, guess: np.ndarray) -> list[str]:
    extra = sorted({str(v) for v in (*truth, *guess)}.difference(run.classes))
    return [*run.classes, *extra]


def _confusion_html(matrix: np.ndarray, labels: Sequence[str]) -> str:
    if len(labels) > MAX_MATRIX_CLASSES:
        return _top_confusions(matrix, labels)
    totals = matrix.sum(axis=1)
    body = []
    for i, label in enumerate(labels):
        cells = []
        for j, count in enumerate(matrix[i]):
            share = count / totals[i] if totals[i] else 0.0
            rgb = "0,114,178" if i == j else "213,94,0"
            color = "#fff" if share > 0.55 else "#1d2330"
            cells.append(
                f'<td style="background:rgba({rgb},{share:.2f});color:{color}">'
                f"{count}</td>"
            )
        body.append(f"<tr><th>{esc(label)}</th>{''.join(cells)}</tr>")
    head = ["true \\ predicted", *[esc(label) for label in labels]]
    return html_table(head, body, css="confusion")


def _top_confusions(matrix: np.ndarray, labels: Sequence[str]) -> str:
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None)[::-1][:NUM_CONFUSIONS]
    totals = matrix.sum(axis=1)
    body = []
    for flat in order:
        i, j = divmod(int(flat), len(labels))
        if off_diagonal[i, j] == 0:
            break
        body.append(
            f"<tr><td>{esc(labels[i])}</td><td>{esc(labels[j])}</td>"
            f'<td class="num">{off_diagonal[i, j]}</td>'
            f'<td class="num">{off_diagonal[i, j] / totals[i]:.1%}</td></tr>'
        )
    note = (
        f'<p class="note">{len(labels)} classes: the most frequent confusions instead '
        "of the full matrix.</p>"
    )
    return (
        "<div>"
        + note
        + html_table(["true", "predicted as", "images", "share of true class"], body)
        + "</div>"
    )


def _per_class_html(truth: list[str], guess: list[str], labels: list[str]) -> str:
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=labels, zero_division=0
    )
    order = list(range(len(labels)))
    note = ""
    if len(labels) > MAX_MATRIX_CLASSES:
        order = sorted(order, key=lambda i: f1[i])[:MAX_MATRIX_CLASSES]
        note = (
            f'<p class="note">The {MAX_MATRIX_CLASSES} classes with the lowest F1.</p>'
        )
    body = [
        f'<tr><td>{esc(labels[i])}</td><td class="num">{support[i]}</td>'
        f'<td class="num">{precision[i]:.3f}</td><td class="num">{recall[i]:.3f}</td>'
        f'<td class="num">{f1[i]:.3f}</td></tr>'
        for i in order
    ]
    head = ["class", "images", "precision", "recall", "F1"]
    return "<div>" + note + html_table(head, body) + "</div>"


def mistakes_section(run: RunFolder, top: Sequence[tuple[str, Predictions]]) -> str:
    if not top:
        return ""
    model, predictions = top[0]
    index = {name: i for i, name in enumerate(run.classes)}
    cards: list[str] = []
    for split in ("val", "test"):
        rows = predictions.select(split)
        wrong = rows[predictions.label[rows] != predictions.predicted[rows]]
        confidence = {int(i): _confidence(predictions, int(i), index) for i in wrong}
        ranked = sorted(wrong, key=lambda i: -confidence[int(i)])
        for i in ranked[: NUM_MISTAKES - len(cards)]:
            cards.append(
                _mistake_card(run, predictions, int(i), split, confidence[int(i)])
            )
    if not cards:
        body = '<p class="note">No mistakes on val or test.</p>'
    else:
        body = f'<div class="gallery">{"".join(cards)}</div>'
    return (
        '<p class="note">'
        f"The best backbone, {esc(model)}: up to {NUM_MISTAKES} images it gets wrong "
        "with the highest confidence, val first, then test.</p>" + body
    )


def _confidence(predictions: Predictions, row: int, index: Mapping[str, int]) -> float:
    column = index.get(str(predictions.predicted[row]))
    probabilities = predictions.proba[row]
    value = probabilities[column] if column is not None else np.nanmax(probabilities)
    return float(value) if np.isfinite(value) else 0.0


def _mistake_card(
    run: RunFolder, predictions: Predictions, row: int, split: str, confidence: float
) -> str:
    filepath = predictions.filepath[row]
    name = Path(filepath).name or filepath
    uri = thumbnail_uri(_resolve(run, filepath)) if filepath else None
    # Files of one name often sit in several class folders: the path within the
    # data set tells them apart, where the file name alone does not.
    source = run.info.get("source") or (run.dataset or {}).get("source")
    where = relative_path(filepath, str(source)) if filepath and source else name
    if uri is None:
        picture = f'<div class="nothumb">no image<br>{esc(shorten(name, 20))}</div>'
    else:
        picture = f'<img src="{uri}" alt="{esc(where)}">'
    # A CSV row says where the file was listed.
    origin = predictions.origin[row] if predictions.origin else ""
    listed = f"<div>{esc(origin)}</div>" if origin and origin != where else ""
    return (
        f'<div class="card" title="{esc(filepath)}">{picture}'
        f"<div><b>{esc(shorten_path(where))}</b></div>{listed}"
        f"<div>true: {esc(predictions.label[row])}</div>"
        f"<div>predicted: {esc(predictions.predicted[row])}</div>"
        f"<div>confidence {confidence:.3f} · {split}</div></div>"
    )


def _resolve(run: RunFolder, filepath: str) -> Path:
    path = Path(filepath)
    if not path.is_absolute() and not path.exists():
        return run.folder / path
    return path
