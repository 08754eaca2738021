"""The report's dataset section: counts per split and class, and what was found.

Pairs of duplicate and near-duplicate images, and of copies within a split, are
shown side by side as small thumbnails, one line a pair, so a reader can judge a
pair at a glance; one file listed in two splits, and a pair under two labels, are
said in words beside it. The lists of problems, notes and ignored files follow,
then image sizes and formats.

The section opens with the warnings ``lazyvision rank`` logged about the data: the
data set's own, and one line for each list of pairs or problems the run went on
with, since rank warns of those too while dataset.json keeps them apart from its
"warnings".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from lazyvision._csv import plural
from lazyvision._html import (
    esc,
    fmt,
    html_table,
    shorten_path,
    thumbnail_uri,
    value_html,
)
from lazyvision._run_folder import RunFolder
from lazyvision.check import relative_path

PAIR_THUMBNAIL_SIDE = 48
#: Pairs drawn with thumbnails; dataset.json has all of them.
MAX_PAIRS = 24
#: Longer lists of pairs start folded, so they do not bury the rest of the page.
MAX_OPEN_PAIRS = 6
_PAIR_LISTS = {
    "duplicates": "Duplicates",
    "near_duplicates": "Near duplicates",
    "copies_within_splits": "Copies within a split",
}
_OTHER_LISTS = ("problems", "notes", "ignored")
# Shown in the header already, in the table of counts, or with the pairs.
_SHOWN = frozenset(
    {
        "source",
        "layout",
        "classes",
        "splits",
        "near_duplicate_distance",
        "warnings",
        *_PAIR_LISTS,
        *_OTHER_LISTS,
    }
)


def dataset_section(run: RunFolder) -> str:
    """Counts, duplicate pairs, problems and image facts from dataset.json."""
    dataset = run.dataset
    if dataset is None:
        return '<p class="note">No dataset.json in the run folder.</p>'
    parts = []
    empty = []
    warnings = _warning_lines(dataset)
    if warnings:
        parts.append("<h3>Warnings</h3>" + value_html(warnings))
    elif "warnings" in dataset:
        empty.append("warnings")
    splits = dataset.get("splits")
    if _is_split_table(splits):
        parts.append("<h3>Images per split and class</h3>" + _counts_html(run, splits))
    for key, title in _PAIR_LISTS.items():
        pairs = dataset.get(key)
        if pairs and isinstance(pairs, list):
            parts.append(f"<h3>{title}</h3>" + _pairs_html(run, key, pairs))
        elif key in dataset:
            empty.append(title.lower())
    for key in _OTHER_LISTS:
        words = key.replace("_", " ")
        if dataset.get(key):
            parts.append(f"<h3>{words.capitalize()}</h3>" + value_html(dataset[key]))
        elif key in dataset:
            empty.append(words)
    if empty:
        parts.append(f"<p>None found: {', '.join(empty)}.</p>")
    rest = {k: v for k, v in dataset.items() if k not in _SHOWN}
    if rest:
        parts.append("<h3>Image sizes, modes and formats</h3>" + value_html(rest))
    return "".join(parts)


def _warning_lines(dataset: Mapping[str, Any]) -> list[str]:
    """What rank logged as warnings about the data, a line each, as it logs them.

    Rank warns of every list of problems or pairs it goes on with, not only of the
    data set's "warnings"; without those lines a report of pairs would say that
    no warning was found.
    """

    def count(key: str) -> int:
        found = dataset.get(key)
        return len(found) if isinstance(found, list) else 0

    lines = []
    if count("problems"):
        images = plural(count("problems"), "image", "images")
        lines.append(f"Left out {images} that cannot be used.")
    if count("duplicates"):
        pairs = plural(count("duplicates"), "pair", "pairs")
        lines.append(
            f"{pairs} of byte-identical files in different splits: a model is "
            "scored on images it was trained on."
        )
    if count("near_duplicates"):
        pairs = plural(
            count("near_duplicates"), "near-duplicate pair", "near-duplicate pairs"
        )
        lines.append(
            f"{pairs} in different splits (the same picture in other bytes): "
            "scores may be optimistic."
        )
    num_copies = count("copies_within_splits")
    if num_copies == 1:
        lines.append(
            "1 file is a byte-identical copy of another in its split, kept as an "
            "image of its own."
        )
    elif num_copies:
        lines.append(
            f"{num_copies} files are byte-identical copies of others in their "
            "split, each kept as an image of its own."
        )
    warnings = dataset.get("warnings")
    if isinstance(warnings, list):
        lines += [str(warning) for warning in warnings]
    return lines


def _is_split_table(splits: object) -> TypeGuard[Mapping[str, Mapping[str, Any]]]:
    return isinstance(splits, dict) and all(
        isinstance(split, dict) and isinstance(split.get("per_class"), dict)
        for split in splits.values()
    )


def _counts_html(run: RunFolder, splits: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(splits)
    seen = (c for split in splits.values() for c in split["per_class"])
    classes = list(dict.fromkeys([*run.classes, *seen]))
    body = []
    for name in classes:
        cells = "".join(
            f'<td class="num">{fmt(splits[s]["per_class"].get(name, 0), 0)}</td>'
            for s in names
        )
        body.append(f"<tr><td>{esc(name)}</td>{cells}</tr>")
    for key, words in (("usable", "usable images"), ("given", "images given")):
        cells = "".join(
            f'<td class="num"><b>{fmt(splits[s].get(key), 0)}</b></td>' for s in names
        )
        body.append(f"<tr><td><b>{words}</b></td>{cells}</tr>")
    return html_table(["class", *[esc(s) for s in names]], body)


def _pairs_html(run: RunFolder, key: str, pairs: Sequence[Any]) -> str:
    """One line per pair: both images with split, label and origin, the distance."""
    if not all(isinstance(pair, dict) for pair in pairs):
        return value_html(list(pairs))
    near = key == "near_duplicates"
    shown = pairs[:MAX_PAIRS]
    notes = [_pair_note(pair) for pair in shown]
    head = [
        "first",
        "second",
        *(["distance"] if near else []),
        *(["note"] if any(notes) else []),
    ]
    body = []
    for pair, note in zip(shown, notes, strict=True):
        first, second = pair.get("first"), pair.get("second")
        first_path, second_path = _pair_paths(run, first, second)
        cells = [
            _sample_html(run, first, first_path),
            _sample_html(run, second, second_path),
        ]
        if near:
            cells.append(f'<span class="num">{esc(pair.get("distance"))}</span>')
        if any(notes):
            cells.append(esc(note))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = ""
    if len(pairs) > len(shown):
        more = (
            f'<p class="note">… and {len(pairs) - len(shown)} more, listed in '
            "dataset.json.</p>"
        )
    opened = " open" if len(pairs) <= MAX_OPEN_PAIRS else ""
    return (
        f'<p class="note">{esc(_pairs_intro(run, key, pairs))}</p>'
        f"<details{opened}><summary>{'The' if opened else 'Show the'} "
        f"{plural(len(shown), 'pair', 'pairs')}</summary>"
        + html_table(head, body, css="pairs")
        + more
        + "</details>"
    )


def _pairs_intro(run: RunFolder, key: str, pairs: Sequence[Mapping[str, Any]]) -> str:
    """What a list of pairs holds and why it matters, in a sentence or two."""
    count = plural(len(pairs), "pair", "pairs")
    if key == "near_duplicates":
        distance = run.dataset.get("near_duplicate_distance") if run.dataset else None
        limit = "" if distance is None else f" (perceptual hash distance ≤ {distance})"
        return (
            f"{count} of images in different splits look alike{limit}. A model can "
            "score on val or test by remembering train, so these scores may be "
            "optimistic."
        )
    if key == "copies_within_splits":
        return (
            f"{count} of different files with the same bytes in one split, under "
            "one label. Each copy is kept as an image of its own, so a copied "
            "picture weighs more in training or is scored more than once."
        )
    same = sum(_is_same_file(pair) for pair in pairs)
    if same == len(pairs):
        found = f"{plural(same, 'file', 'files')} listed in two splits"
    else:
        found = f"{count} of files with the same bytes in different splits"
        if same:
            found += f", {same} of them one file listed twice"
    return f"{found}. A model is then scored on images it was trained on."


def _pair_note(pair: Mapping[str, Any]) -> str:
    """ "the same file in train and val; labelled 'a' in train, 'b' in val"."""
    first, second = pair.get("first"), pair.get("second")
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return ""
    notes = []
    if _is_same_file(pair):
        notes.append(f"the same file in {first.get('split')} and {second.get('split')}")
    if first.get("label") != second.get("label"):
        notes.append(
            f"labelled {str(first.get('label'))!r} in {first.get('split')}, "
            f"{str(second.get('label'))!r} in {second.get('split')}"
        )
    return "; ".join(notes)


def _is_same_file(pair: Mapping[str, Any]) -> bool:
    first, second = pair.get("first"), pair.get("second")
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return False
    return bool(first.get("path")) and first.get("path") == second.get("path")


def _pair_paths(run: RunFolder, first: object, second: object) -> tuple[str, str]:
    """The two files' paths within the data set, shortened where that keeps them apart.

    Files of one name often sit in several class folders, so the file name alone
    would show two different files as one.
    """
    paths = [_path_within(run, sample) for sample in (first, second)]
    short = [shorten_path(path) for path in paths]
    if short[0] == short[1] and paths[0] != paths[1]:
        return paths[0], paths[1]
    return short[0], short[1]


def _path_within(run: RunFolder, sample: object) -> str:
    """A sample's path as check shows it: relative to the data set's folder."""
    path = str(sample.get("path") or "") if isinstance(sample, dict) else ""
    dataset = run.dataset or {}
    source = dataset.get("source") or run.info.get("source")
    return relative_path(path, str(source)) if path and source else path


def _sample_html(run: RunFolder, sample: object, shown_path: str) -> str:
    """A thumbnail with the sample's split, label, origin and path."""
    if not isinstance(sample, dict):
        return esc(sample)
    path = str(sample.get("path") or "")
    uri = thumbnail_uri(_resolve(run, path), PAIR_THUMBNAIL_SIDE) if path else None
    picture = (
        f'<img src="{uri}" alt="{esc(shown_path)}">'
        if uri is not None
        else '<span class="nothumb">no image</span>'
    )
    facts = [
        f"<b>{esc(sample.get('split'))}</b> · label {esc(sample.get('label'))}",
        f"origin: {esc(sample.get('origin'))}",
        f'<span title="{esc(path)}">{esc(shown_path)}</span>',
    ]
    return f'<div class="sample">{picture}<div>{"<br>".join(facts)}</div></div>'


def _resolve(run: RunFolder, filepath: str) -> Path:
    path = Path(filepath)
    if not path.is_absolute() and not path.exists():
        return run.folder / path
    return path
