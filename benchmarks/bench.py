"""Time lazyvision against a bare forward pass, its own cache and the usual notebook.

One run prints, side by side, for each backbone:

- the bare forward pass: ``model(x)`` on pre-built random batches, at
  lazyvision's batch size and precision (channels-last, bfloat16 autocast where
  the CPU has it), timed from the first batch in a fresh process, once for the
  model as lazyvision prepares and runs it (BatchNorm folded into the
  convolutions, ReLUs as integer clamps of 16-bit floats, freed memory reused)
  and once as timm builds it, in a process at PyTorch's defaults;
- lazyvision's cold run of that backbone alone (``runner.rank`` in-process with an
  empty cache, timed after the imports), with the row's extract and head seconds
  and the rest split into phases;
- the warm run: the same call with a new output folder and the same cache;
- the ratios against the targets: cold <= 1.15 x forward, cold >= 20 x warm,
  decoding, preprocessing, cache and head under 15% of the cold run.

Then the peak memory of a cold run at two data set sizes, the leaderboard numbers
of ``tf_efficientnet_lite0`` (its packaged ImageNet weights) at float32 and at the
automatic precision, and, given a TensorFlow environment, the seconds the notebook
protocol of ``shared/bench/notebook_protocol.py`` takes per backbone on the same
images.

Every measurement runs in a fresh Python process, so no run inherits another's
warm state; timings are medians of ``--repeats`` runs. The images are the digits
sample of :func:`lazyvision.sample.write_digits_sample` at 96x96 pixels. No hub
weights are downloaded: backbones run as ``NAME@random``, which costs the same.

Examples:
    python benchmarks/bench.py --quick
    python benchmarks/bench.py --tf-python /tmp/tfenv/bin/python --json bench.json
    python benchmarks/bench.py --models resnet50@random --pretrained-lite
    python benchmarks/bench.py --from-json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import math
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODELS = ("mobilenetv2_100@random", "efficientnet_b0@random", "resnet50@random")
LITE = "tf_efficientnet_lite0"
#: Side of the sample images, as in the notebook harness's own figures.
IMAGE_SIDE = 96
#: Keras Applications names by timm name, for the backbones the notebook can run.
KERAS_NAMES = {
    "mobilenetv2_100": "MobileNetV2",
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
    "densenet121": "DenseNet121",
    "inception_v3": "InceptionV3",
    "vgg16": "VGG16",
}
TARGET_COLD_OVER_FORWARD = 1.15
TARGET_COLD_OVER_WARM = 20.0
TARGET_OVERHEAD_SHARE = 0.15
TARGET_NOTEBOOK_OVER_COLD = 10.0
# runner functions timed as phases of a run (module attributes, looked up per call).
PHASES = {
    "_preprocessing_or_none": "plan",
    "_scan": "decode",
    "create_backbone": "build",
    "extract_features": "extract",
    "fit_probe": "head",
    "count_macs": "macs",
    "_split_scores": "metrics",
    "save_evaluation": "save",
    "finish_leaderboard": "leaderboard",
}
#: Suffix of the phase keys that hold process CPU seconds rather than wall seconds.
CPU_SUFFIX = " cpu"
#: The phases whose CPU seconds are read: those the FLOOR table needs.
CPU_PHASES = ("decode", "build")
SPREAD_KEYS = ("forward", "cold", "warm", "cold_over_forward", "overhead_share")
REST_PHASES = ("plan", "decode", "build", "macs", "metrics", "save", "leaderboard")
ROW_KEYS = (
    "status",
    "reason",
    "precision",
    "input_size",
    "embedding_size",
    "extract_seconds",
    "head_fit_seconds",
    "images_per_second",
    "num_computed",
    "val_accuracy",
    "val_balanced_accuracy",
    "test_accuracy",
    "test_balanced_accuracy",
)
CHILD_TIMEOUT_SECONDS = 1800
NOTEBOOK_TIMEOUT_SECONDS = 3600


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints its tables; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.child is not None:
        run_child(Path(args.child))
        return 0
    if args.from_json is not None:
        print(format_report(json.loads(Path(args.from_json).read_text())))
        return 0
    if args.quick:
        args.models = args.models or [DEFAULT_MODELS[0]]
        args.images = args.images or 200
        args.repeats = args.repeats or 1
    models = list(args.models or DEFAULT_MODELS)
    if args.pretrained_lite and LITE not in models:
        models.append(LITE)
    num_images = args.images or 500
    repeats = args.repeats or 3
    memory_sizes = args.memory_sizes or [num_images // 2, num_images * 2]
    notebook = _notebook_path(args)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="lazyvision-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(
        work=work,
        batch_size=args.batch_size,
        precision=args.precision,
        verbose=args.verbose,
    )
    started = time.monotonic()
    # A failed measurement raises before the cleanup, keeping its job folder.
    results = bench.run_all(
        models=models,
        num_images=num_images,
        repeats=repeats,
        memory_sizes=memory_sizes,
        skip=set(args.skip),
        tf_python=args.tf_python,
        notebook=notebook,
        profile=args.profile,
    )
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["command"] = " ".join(["python", "benchmarks/bench.py", *argv])
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time lazyvision against a bare forward pass, its cache and "
        "the notebook protocol, on this machine.",
    )
    parser.add_argument(
        "--models",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        help="comma-separated lazyvision specs; add @random where no weights are "
        f"at hand (default: {','.join(DEFAULT_MODELS)})",
    )
    parser.add_argument(
        "--pretrained-lite",
        action="store_true",
        help=f"also time {LITE} with its packaged ImageNet weights",
    )
    parser.add_argument(
        "--images",
        type=int,
        help="number of sample images, N (default 500; the digits set holds about "
        "1790, so N and the memory sizes stay below that)",
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per timing; medians are shown (default 3)"
    )
    parser.add_argument(
        "--memory-sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="two data set sizes for the peak-memory runs (default N/2,2N)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="default: lazyvision's Settings().batch_size"
    )
    parser.add_argument(
        "--precision", default="auto", help="precision of the timed runs"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one model, 200 images, one repeat",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["memory", "precision", "notebook"],
        help="leave a section out (repeatable)",
    )
    parser.add_argument(
        "--tf-python",
        help="Python of a TensorFlow environment; runs the notebook comparison",
    )
    parser.add_argument(
        "--notebook",
        help="notebook_protocol.py (default: shared/bench/ beside the repository)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one cold run of the first model; top calls to stderr",
    )
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument(
        "--from-json", help="print the tables of a saved --json file; measure nothing"
    )
    parser.add_argument("--work-dir", help="where samples and runs go (kept)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary work folder"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="say what runs, on stderr"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def _notebook_path(args: argparse.Namespace) -> Path | None:
    if args.tf_python is None or "notebook" in args.skip:
        return None
    if args.notebook is not None:
        path = Path(args.notebook)
    else:
        path = Path(__file__).resolve().parents[2] / "shared/bench/notebook_protocol.py"
    if not path.is_file():
        raise SystemExit(
            f"notebook protocol {str(path)!r} not found; pass --notebook PATH"
        )
    return path


class Benchmark:
    """Writes the samples and runs every measurement in its own process.

    Args:
        work: Folder for samples, caches and run folders.
        batch_size: Batch size of every run; ``None`` takes lazyvision's default.
        precision: Precision of the timed runs.
        verbose: Say on stderr what runs.
    """

    def __init__(
        self, *, work: Path, batch_size: int | None, precision: str, verbose: bool
    ) -> None:
        from lazyvision.settings import Settings

        self.work = work
        self.batch_size = batch_size or Settings().batch_size
        self.precision = precision
        self.verbose = verbose
        self.loads: list[float] = []
        self._jobs = 0

    def run_all(
        self,
        *,
        models: Sequence[str],
        num_images: int,
        repeats: int,
        memory_sizes: Sequence[int],
        skip: set[str],
        tf_python: str | None,
        notebook: Path | None,
        profile: bool,
    ) -> dict[str, Any]:
        """Every section; returns the raw measurements and the machine."""
        results: dict[str, Any] = {"machine": machine_info(self.precision)}
        results["machine"]["load_start"] = os.getloadavg()[0]
        splits = write_sample(self.work / "sample", num_images)
        results["data"] = describe_splits(splits)
        results["settings"] = {
            "batch_size": self.batch_size,
            "precision": self.precision,
            "repeats": repeats,
        }

        num_images = results["data"]["num_images"]
        results["speed"] = {
            spec: [self.speed_repeat(splits, spec, num_images) for _ in range(repeats)]
            for spec in models
        }
        if profile:
            self.measure(splits, models[0], profile=True)

        if "memory" not in skip:
            results["memory"] = [
                self.measure(
                    write_sample(self.work / f"sample-{size}", size),
                    models[0],
                    memory=True,
                )
                for size in memory_sizes
            ]
        if "precision" not in skip:
            results["precision"] = {
                precision: self.measure(splits, LITE, precision=precision)
                for precision in ("float32", "auto")
            }
            results["precision"]["agreement"] = prediction_agreement(
                *(Path(r["run_dir"]) for r in results["precision"].values())
            )
        if notebook is not None and tf_python is not None:
            results["notebook"] = self.compare_notebook(
                splits, models, repeats, tf_python=tf_python, notebook=notebook
            )
        results["machine"]["load_end"] = os.getloadavg()[0]
        results["machine"]["load_during"] = self.loads
        return results

    def speed_repeat(self, splits: Path, spec: str, num_images: int) -> dict[str, Any]:
        """One repeat: the bare forward as lazyvision runs the model and as timm
        builds it, each in a fresh process, then the cold and warm runs."""
        result = self.measure(splits, spec, warm=True)
        result["forward"] = self.measure_forward(spec, num_images, prepared=True)
        result["timm_forward"] = self.measure_forward(spec, num_images, prepared=False)
        return result

    def measure_forward(
        self, spec: str, num_images: int, *, prepared: bool
    ) -> dict[str, Any]:
        """Times the bare forward pass of ``spec`` in a child process."""
        return self._child(
            {
                "kind": "forward",
                "spec": spec,
                "num_images": num_images,
                "batch_size": self.batch_size,
                "precision": self.precision,
                "prepared": prepared,
            },
            f"{spec} bare forward ({'as run' if prepared else 'as timm builds it'})",
        )

    def compare_notebook(
        self,
        splits: Path,
        models: Sequence[str],
        repeats: int,
        *,
        tf_python: str,
        notebook: Path,
    ) -> dict[str, Any]:
        """The notebook protocol and lazyvision's cold run on one binary task."""
        binary = write_binary_splits(splits, self.work / "sample" / "binary")
        pairs = {
            spec: KERAS_NAMES[spec.partition("@")[0]]
            for spec in models
            if spec.partition("@")[0] in KERAS_NAMES
        }
        if not pairs:
            return {"data": describe_splits(binary), "models": {}}
        lazy = {
            spec: [self.measure(binary, spec) for _ in range(repeats)] for spec in pairs
        }
        self._say(f"notebook protocol: {', '.join(pairs.values())}")
        self.loads.append(os.getloadavg()[0])
        timed = run_notebook(tf_python, notebook, binary, list(pairs.values()))
        return {
            "data": describe_splits(binary),
            "wall_seconds": timed.pop("wall_seconds"),
            "models": {
                spec: {"keras": keras, "notebook": timed.get(keras), "lazy": lazy[spec]}
                for spec, keras in pairs.items()
            },
        }

    def measure(
        self,
        splits: Path,
        spec: str,
        *,
        warm: bool = False,
        memory: bool = False,
        profile: bool = False,
        precision: str | None = None,
    ) -> dict[str, Any]:
        """Runs one cold run of ``spec`` (and whatever else is asked) in a child."""
        job = {
            "kind": "rank",
            "splits": str(splits),
            "spec": spec,
            "batch_size": self.batch_size,
            "precision": precision or self.precision,
            "warm": warm,
            "memory": memory,
            "profile": profile,
        }
        what = [k for k in ("warm", "memory", "profile") if job[k]]
        data = f"{splits.parent.name}/{splits.name}"
        return self._child(job, f"{spec} on {data} ({job['precision']}) cold {what}")

    def _child(self, job: dict[str, Any], title: str) -> dict[str, Any]:
        """Runs ``job`` in a fresh Python process; returns what it measured."""
        self._jobs += 1
        folder = self.work / f"job-{self._jobs:03d}"
        folder.mkdir(parents=True)
        job = {**job, "folder": str(folder)}
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job))
        self._say(title)
        self.loads.append(os.getloadavg()[0])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(job_path)],
            env=env,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"measuring {job['spec']!r} failed (exit status "
                f"{completed.returncode}); the job is in {str(job_path)!r}"
            )
        result: dict[str, Any] = json.loads((folder / "result.json").read_text())
        return result

    def _say(self, text: str) -> None:
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            print(f"[bench {stamp}] {text}", file=sys.stderr, flush=True)


def write_sample(root: Path, num_images: int) -> Path:
    """The digits sample with about ``num_images`` images over ten classes."""
    from lazyvision.sample import write_digits_sample

    if num_images < 20:
        raise SystemExit(f"--images must be 20 or more, got {num_images!r}")
    return write_digits_sample(
        root, num_per_class=round(num_images / 10), side=IMAGE_SIDE
    )


def write_binary_splits(splits: Path, folder: Path) -> Path:
    """train.csv and val.csv of ``splits`` relabelled digit < 5, beside it.

    The labels are words, since the notebook's generator takes only string labels
    for a binary task; the paths stay relative to the CSVs' folder.
    """
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        frame = pd.read_csv(splits / f"{split}.csv", dtype={"label": str})
        frame["label"] = ["low" if int(v) < 5 else "high" for v in frame["label"]]
        frame.to_csv(folder / f"{split}.csv", index=False)
    return folder


def describe_splits(splits: Path) -> dict[str, Any]:
    """Images per split and the classes of a folder of split CSVs."""
    import pandas as pd

    counts: dict[str, int] = {}
    classes: set[str] = set()
    for split in ("train", "val", "test"):
        path = splits / f"{split}.csv"
        if path.is_file():
            frame = pd.read_csv(path, dtype={"label": str})
            counts[split] = len(frame)
            classes.update(frame["label"])
    return {
        "num_images": sum(counts.values()),
        "splits": counts,
        "classes": sorted(classes),
        "side": IMAGE_SIDE,
    }


def machine_info(precision: str) -> dict[str, Any]:
    """CPU, cores, library versions and the precision ``precision`` resolves to."""
    import timm
    import torch

    import lazyvision
    from lazyvision.features import resolve_device, resolve_precision

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = resolve_device("auto")
    dtype = resolve_precision(precision, device)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "precision": f"{str(dtype).removeprefix('torch.')} ({precision})",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lazyvision": lazyvision.__version__,
    }


def prediction_agreement(first: Path, second: Path) -> float | None:
    """Share of validation images two run folders predict the same class for."""
    import pandas as pd

    frames = []
    for run_dir in (first, second):
        found = sorted(run_dir.glob("models/*/predictions.csv"))
        if len(found) != 1:
            return None
        frame = pd.read_csv(found[0], dtype={"predicted": str})
        frames.append(frame[frame["split"] == "val"].set_index("filepath"))
    joined = frames[0][["predicted"]].join(
        frames[1][["predicted"]].rename(columns={"predicted": "other"}), how="inner"
    )
    if joined.empty:
        return None
    return float((joined["predicted"] == joined["other"]).mean())


def run_notebook(
    tf_python: str, notebook: Path, splits: Path, keras_names: Sequence[str]
) -> dict[str, Any]:
    """Runs the notebook protocol once over every model; its figures per model."""
    env = {**os.environ, "FULL_EPOCHS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.monotonic()
    completed = subprocess.run(
        [tf_python, str(notebook), str(splits), *keras_names],
        env=env,
        capture_output=True,
        text=True,
        timeout=NOTEBOOK_TIMEOUT_SECONDS,
        check=False,
    )
    wall = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"notebook protocol exited with status {completed.returncode}:\n"
            + completed.stderr[-3000:]
        )
    timed: dict[str, Any] = {"wall_seconds": round(wall, 1)}
    for line in completed.stdout.splitlines():
        name, *fields = line.split("\t")
        if name in keras_names:
            values = dict(field.split("=", 1) for field in fields)
            timed[name] = {key: float(value) for key, value in values.items()}
    return timed


# The child process: one cold run, and the measurements asked for around it.


def run_child(job_path: Path) -> None:
    """Measures one job and writes ``result.json`` beside it."""
    job = json.loads(job_path.read_text())
    result = measure_job(job)
    Path(job["folder"], "result.json").write_text(json.dumps(result, default=str))


def measure_job(job: dict[str, Any]) -> dict[str, Any]:
    """A bare forward, or a cold run followed by whatever else is asked."""
    if job["kind"] == "forward":
        return time_forward(
            job["spec"],
            job["num_images"],
            job["batch_size"],
            job["precision"],
            prepared=job["prepared"],
        )
    import lazyvision.evaluation as evaluation
    import lazyvision.runner as runner
    from lazyvision.backbones import resolve_preprocessing
    from lazyvision.settings import Settings

    folder = Path(job["folder"])
    spec = job["spec"]
    settings = Settings(
        batch_size=job["batch_size"], precision=job["precision"], allow_download=False
    )
    phases = instrument(runner, evaluation)
    sampler = MemorySampler() if job["memory"] else None
    rss_after_imports = read_status().get("VmRSS", 0)
    cpu_seconds: dict[str, float] = {}

    def rank(output: str) -> tuple[float, dict[str, Any]]:
        phases.clear()
        cpu_start = time.process_time()
        start = time.perf_counter()
        board = runner.rank(
            job["splits"],
            models=[spec],
            output=folder / output,
            cache_dir=folder / "cache",
            settings=settings,
        )
        seconds = time.perf_counter() - start
        cpu_seconds[output] = time.process_time() - cpu_start
        row = {key: _plain(board.iloc[0].get(key)) for key in ROW_KEYS}
        if row["status"] != "ok":
            raise RuntimeError(f"{spec} did not finish: {row['reason']}")
        return seconds, row

    if job["profile"]:
        with profiled(f"cold run of {spec}"):
            rank("profiled")
        return {}

    result: dict[str, Any] = {"spec": spec, "run_dir": str(folder / "cold")}
    result["cold_seconds"], result["row"] = rank("cold")
    result["cold_phases"] = dict(phases)
    result["cold_cpu_seconds"] = cpu_seconds["cold"]
    if sampler is not None:
        peaks = sampler.stop()
        side = stored_side(resolve_preprocessing(spec))
        num_images = result["row"]["num_computed"]
        result["memory"] = {
            "num_images": num_images,
            "rss_after_imports_kib": rss_after_imports,
            "peak_rss_kib": read_status().get("VmHWM", 0),
            **peaks,
            "embeddings_kib": num_images * result["row"]["embedding_size"] * 4 / 1024,
            "pixel_store_kib": num_images * side * side * 3 / 1024,
        }
    if job["warm"]:
        result["warm_seconds"], warm_row = rank("warm")
        result["warm_phases"] = dict(phases)
        result["warm_num_computed"] = warm_row["num_computed"]
    return result


def time_forward(
    spec: str, num_images: int, batch_size: int, precision: str, *, prepared: bool
) -> dict[str, Any]:
    """Seconds ``model(x)`` takes over ``num_images`` random inputs in batches.

    Timed from the first batch of a model that has not run yet, as extraction
    runs it: inference mode, channels-last, autocast to the resolved precision.
    ``prepared`` runs the model as lazyvision prepares and runs it (see
    :func:`lazyvision.features.prepare_model`; freed memory reused); otherwise as
    timm builds it, in a process left at PyTorch's defaults. A second, steady pass
    over the same batches is timed too, and for the prepared model on the CPU a
    third on one thread.
    """
    import torch

    from lazyvision._allocator import reuse_freed_memory
    from lazyvision.backbones import create_backbone
    from lazyvision.features import prepare_model, resolve_device, resolve_precision

    device = resolve_device("auto")
    backbone = create_backbone(spec, allow_download=False)
    dtype = resolve_precision(precision, device)
    if not backbone.reduced_precision_ok:
        dtype = torch.float32
    if prepared:
        model = prepare_model(backbone.model, device)
    else:
        model = backbone.model.to(device).to(memory_format=torch.channels_last).eval()
    height, width = backbone.preprocessing.input_size
    sizes = [
        min(batch_size, num_images - first)
        for first in range(0, num_images, batch_size)
    ]
    generator = torch.Generator().manual_seed(0)
    inputs = {
        size: torch.randn(size, 3, height, width, generator=generator)
        .to(device)
        .contiguous(memory_format=torch.channels_last)
        for size in sorted(set(sizes))
    }

    def run(batches: Sequence[int]) -> tuple[float, float, float]:
        cpu_start = time.process_time()
        start = time.perf_counter()
        first = 0.0
        for size in batches:
            model(inputs[size])
            if device.type == "cuda":
                torch.cuda.synchronize()
            first = first or time.perf_counter() - start
        return time.perf_counter() - start, time.process_time() - cpu_start, first

    # lazyvision's extraction keeps freed activation maps for reuse on the CPU.
    reuse = reuse_freed_memory() if prepared and device.type == "cpu" else None
    with (
        reuse or contextlib.nullcontext(),
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32),
    ):
        seconds, cpu_seconds, first_batch = run(sizes)
        steady, _, _ = run(sizes)
        threads = torch.get_num_threads()
        serial = math.nan
        if prepared and device.type == "cpu" and threads > 1:
            # The same steady pass on one thread: against the pass above, how
            # much of the threads' time is work rather than waiting.
            torch.set_num_threads(1)
            try:
                serial, _, _ = run(sizes)
            finally:
                torch.set_num_threads(threads)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "images_per_second": num_images / seconds,
        "first_batch_seconds": first_batch,
        "steady_seconds": steady,
        "serial_steady_seconds": serial,
        "threads": threads,
        "num_batches": len(sizes),
        "dtype": str(dtype).removeprefix("torch."),
    }


def instrument(*modules: Any) -> dict[str, float]:
    """Wraps the phase functions of ``modules`` to add up their seconds.

    Each phase's wall seconds go under its name; for :data:`CPU_PHASES`, its
    process CPU seconds (every thread's) under the name plus :data:`CPU_SUFFIX`.

    Timing only: each wrapper calls the original with the same arguments. It is
    installed in the child process, whose only job is this measurement.
    """
    phases: dict[str, float] = {}
    for name, phase in PHASES.items():
        owners = [module for module in modules if hasattr(module, name)]
        if not owners:
            print(f"bench: {name} is gone; {phase!r} not timed", file=sys.stderr)
        # Where one module imports the function from another, the caller's
        # module is the one whose name is looked up at the call.
        for module in owners:
            setattr(module, name, _timed(getattr(module, name), phase, phases))
    return phases


def wall_seconds(phases: dict[str, float]) -> dict[str, float]:
    """The wall-clock phases of :func:`instrument`'s dictionary, without CPU keys."""
    return {k: v for k, v in phases.items() if not k.endswith(CPU_SUFFIX)}


def stored_side(preprocessing: Any) -> int:
    """Side of the square the pixel store keeps for one backbone (the larger of
    its resize size and input size: timm's centre crop lies inside it)."""
    height, width = preprocessing.input_size
    if preprocessing.crop_mode == "squash":
        return int(max(height, width))
    return int(max(preprocessing.resize_size, height, width))


def _timed(
    function: Callable[..., Any], phase: str, into: dict[str, float]
) -> Callable[..., Any]:
    cpu = f"{phase}{CPU_SUFFIX}"
    # Reading the process's CPU clock around the extraction slowed the cold run
    # of MobileNetV2 by a fifth here, so only the phases the floor needs read it.
    clock = time.process_time if phase in CPU_PHASES else lambda: 0.0

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start, cpu_start = time.perf_counter(), clock()
        try:
            return function(*args, **kwargs)
        finally:
            into[phase] = into.get(phase, 0.0) + time.perf_counter() - start
            if phase in CPU_PHASES:
                into[cpu] = into.get(cpu, 0.0) + clock() - cpu_start

    return wrapper


class MemorySampler:
    """Peak anonymous and file-backed resident memory, sampled every 20 ms.

    VmHWM gives the exact peak of the two together; the samples say which part it
    came from (the pixel store is a file-backed memory map).
    """

    interval_seconds = 0.02

    def __init__(self) -> None:
        self.peaks = {"peak_anon_kib": 0, "peak_file_kib": 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval_seconds):
            status = read_status()
            for key, field in (
                ("peak_anon_kib", "RssAnon"),
                ("peak_file_kib", "RssFile"),
            ):
                self.peaks[key] = max(self.peaks[key], status.get(field, 0))

    def stop(self) -> dict[str, int]:
        self._done.set()
        self._thread.join()
        return dict(self.peaks)


def read_status() -> dict[str, int]:
    """The kB fields of /proc/self/status (empty where there is none)."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0])
    return fields


@contextlib.contextmanager
def profiled(title: str, limit: int = 25) -> Iterator[None]:
    """Profiles the block; prints the top calls by cumulative and own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        print(f"\n== cProfile: {title} ==", file=sys.stderr)
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
        stats.sort_stats("cumulative").print_stats(limit)
        stats.sort_stats("tottime").print_stats(limit)


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: numpy numbers as Python ones, NaN as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# The report.


def format_report(results: dict[str, Any]) -> str:
    """Every section as plain-text tables."""
    parts = [_format_header(results), _format_speed(results)]
    if "memory" in results:
        parts.append(_format_memory(results["memory"]))
    if "precision" in results:
        parts.append(_format_precision(results["precision"]))
    if "notebook" in results:
        parts.append(_format_notebook(results["notebook"]))
    return "\n\n".join(parts) + "\n"


def _format_header(results: dict[str, Any]) -> str:
    machine, data = results["machine"], results["data"]
    settings = results["settings"]
    splits = ", ".join(f"{n} {s}" for s, n in data["splits"].items())
    loads = machine.get("load_during") or [machine["load_start"]]
    return "\n".join(
        [
            f"command: {results.get('command', '')}",
            f"machine: {machine['cpu']}, {machine['cores']} cores, torch threads "
            f"{machine['torch_threads']}, device {machine['device']}",
            f"software: python {machine['python']}, torch {machine['torch']}, timm "
            f"{machine['timm']}, lazyvision {machine['lazyvision']}",
            f"precision: {machine['precision']}, batch size {settings['batch_size']}",
            f"data: {data['num_images']} digit images of {data['side']}x"
            f"{data['side']} ({splits}), {len(data['classes'])} classes",
            f"repeats: {settings['repeats']}, medians shown; each run in a fresh "
            "process, timed after its imports",
            f"load average (1 min): {machine['load_start']:.2f} at start, "
            f"{min(loads):.2f} to {max(loads):.2f} before the runs, "
            f"{machine['load_end']:.2f} at end; total "
            f"{results.get('total_seconds', 0):.0f} s",
        ]
    )


def floor_parts(run: dict[str, Any]) -> dict[str, float]:
    """The shortest cold run this machine allows for the work one run did.

    Decoding and building the model could overlap the forward pass, but only on
    the same cores; the head, the scores and the files need the last embedding.
    So a cold run cannot take less than

        (forward work + decode CPU + build CPU) / threads + head + after

    where the forward work is the CPU time the forward pass needs on its threads
    when they never wait (its wall seconds x threads x its parallel efficiency,
    the one-thread steady pass against the threaded one), the decode and build
    CPU seconds are those of the cold run, and ``after`` is its metrics, saving
    and leaderboard. The floor is NaN for saved runs from before the one-thread
    pass was timed.
    """
    forward, phases = run["forward"], run["cold_phases"]
    threads = forward.get("threads", math.nan)
    # Capped at 1: one thread can come out a little faster per image than two
    # (a cache of its own, another core speed), and the floor must not grow by it.
    serial = forward.get("serial_steady_seconds", math.nan)
    efficiency = serial / (threads * forward["steady_seconds"])
    if not math.isnan(efficiency):
        efficiency = min(1.0, efficiency)
    work = forward["seconds"] * threads * efficiency
    shared = work + phases.get(f"decode{CPU_SUFFIX}", math.nan)
    shared += phases.get(f"build{CPU_SUFFIX}", math.nan)
    after = sum(phases.get(name, 0.0) for name in ("metrics", "save", "leaderboard"))
    head = run["row"]["head_fit_seconds"]
    return {
        "efficiency": efficiency,
        "forward_work": work,
        "decode_cpu": phases.get(f"decode{CPU_SUFFIX}", math.nan),
        "after": after,
        "floor": shared / threads + head + after,
    }


def summarise_speed(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Medians over repeats; each ratio is taken within a repeat first."""
    per_run = []
    for run in runs:
        cold, forward = run["cold_seconds"], run["forward"]["seconds"]
        phases = run["cold_phases"]
        extract = run["row"]["extract_seconds"]
        head = run["row"]["head_fit_seconds"]
        overhead = phases.get("decode", 0.0) + max(0.0, extract - forward) + head
        # Saved runs from before the timm-built forward was timed lack it.
        timm_forward = run.get("timm_forward", {}).get("seconds", math.nan)
        floor = floor_parts(run)
        per_run.append(
            {
                "forward_ips": run["forward"]["images_per_second"],
                "forward": forward,
                "timm_forward": timm_forward,
                "cold_over_timm": cold / timm_forward,
                "cold_over_steady": cold
                / run["forward"].get("steady_seconds", math.nan),
                "first_batch": run["forward"].get("first_batch_seconds", math.nan),
                "steady": run["forward"].get("steady_seconds", math.nan),
                "cold": cold,
                "extract": extract,
                "head": head,
                "rest": cold - extract - head,
                "warm": run["warm_seconds"],
                "cold_over_forward": cold / forward,
                "cpu_cold_over_forward": run["cold_cpu_seconds"]
                / run["forward"]["cpu_seconds"],
                "cold_over_warm": cold / run["warm_seconds"],
                "overhead_share": overhead / cold,
                **{phase: phases.get(phase, 0.0) for phase in REST_PHASES},
                "other": cold - sum(wall_seconds(phases).values()),
                **floor,
                "floor_over_forward": floor["floor"] / forward,
                "cold_over_floor": cold / floor["floor"],
                "warm_decode": run["warm_phases"].get("decode", 0.0),
                "warm_plan": run["warm_phases"].get("plan", 0.0),
                "warm_leaderboard": run["warm_phases"].get("leaderboard", 0.0),
            }
        )
    summary = {key: statistics.median(r[key] for r in per_run) for key in per_run[0]}
    for key in SPREAD_KEYS:
        summary[f"{key}_min"] = min(r[key] for r in per_run)
        summary[f"{key}_max"] = max(r[key] for r in per_run)
    # Load from other processes only slows runs down, so the fastest are the
    # least disturbed; their ratio is a second, less noisy estimate.
    summary["best_cold_over_forward"] = summary["cold_min"] / summary["forward_min"]
    return summary


def _format_speed(results: dict[str, Any]) -> str:
    num_images = results["data"]["num_images"]
    summaries = {spec: summarise_speed(runs) for spec, runs in results["speed"].items()}
    speed = _table(
        [
            "model",
            "fwd img/s",
            "fwd s",
            "timm fwd s",
            "cold s",
            "extract s",
            "head s",
            "rest s",
            "warm s",
            "cold/fwd",
            "cold/timm",
            "cpu c/f",
            "cold/warm",
            "overhead",
        ],
        [
            [
                spec,
                f"{s['forward_ips']:.1f}",
                f"{s['forward']:.2f}",
                f"{s['timm_forward']:.2f}",
                f"{s['cold']:.2f}",
                f"{s['extract']:.2f}",
                f"{s['head']:.2f}",
                f"{s['rest']:.2f}",
                f"{s['warm']:.3f}",
                _versus(s["cold_over_forward"], TARGET_COLD_OVER_FORWARD, below=True),
                _versus(s["cold_over_timm"], TARGET_COLD_OVER_FORWARD, below=True),
                f"{s['cpu_cold_over_forward']:.2f}",
                _versus(s["cold_over_warm"], TARGET_COLD_OVER_WARM, below=False),
                _versus(
                    s["overhead_share"], TARGET_OVERHEAD_SHARE, below=True, percent=True
                ),
            ]
            for spec, s in summaries.items()
        ],
    )
    rest = _table(
        [
            "model",
            *REST_PHASES,
            "other",
            "fwd 1st batch",
            "fwd steady",
            "warm: decode",
            "plan",
            "board",
        ],
        [
            [
                spec,
                *(f"{s[phase]:.2f}" for phase in REST_PHASES),
                f"{s['other']:.2f}",
                f"{s['first_batch']:.2f}",
                f"{s['steady']:.2f}",
                f"{s['warm_decode']:.3f}",
                f"{s['warm_plan']:.3f}",
                f"{s['warm_leaderboard']:.3f}",
            ]
            for spec, s in summaries.items()
        ],
    )
    spread = _table(
        [
            "model",
            "fwd s",
            "cold s",
            "warm s",
            "cold/fwd",
            "overhead",
            "best c/f",
            "cold/steady",
        ],
        [
            [
                spec,
                *(
                    f"{s[f'{key}_min']:.2f}-{s[f'{key}_max']:.2f}"
                    for key in SPREAD_KEYS[:-1]
                ),
                f"{s['overhead_share_min']:.0%}-{s['overhead_share_max']:.0%}",
                f"{s['best_cold_over_forward']:.2f}",
                f"{s['cold_over_steady']:.2f}",
            ]
            for spec, s in summaries.items()
        ],
    )
    floor = _table(
        [
            "model",
            "fwd s",
            "thread eff",
            "fwd work cpu s",
            "decode cpu s",
            "head s",
            "after s",
            "floor s",
            "floor/fwd",
            "cold/floor",
        ],
        [
            [
                spec,
                f"{s['forward']:.2f}",
                f"{s['efficiency']:.0%}",
                f"{s['forward_work']:.2f}",
                f"{s['decode_cpu']:.2f}",
                f"{s['head']:.2f}",
                f"{s['after']:.2f}",
                f"{s['floor']:.2f}",
                _versus(s["floor_over_forward"], TARGET_COLD_OVER_FORWARD, below=True),
                f"{s['cold_over_floor']:.2f}",
            ]
            for spec, s in summaries.items()
        ],
    )
    return (
        f"SPEED: seconds for all {num_images} images (medians)\n"
        f"{speed}\n"
        "fwd = the bare forward of the model as lazyvision runs it (BatchNorm folded "
        "into the convolutions, ReLUs as integer clamps, freed memory reused), from "
        "its first batch, in a fresh process; timm fwd = the same for the model as "
        "timm builds it, at PyTorch's defaults\n"
        f"targets: cold/fwd <= {TARGET_COLD_OVER_FORWARD}, cold/warm >= "
        f"{TARGET_COLD_OVER_WARM:g}, overhead (decode + extract beyond the bare "
        f"forward + head) < {TARGET_OVERHEAD_SHARE:.0%} of cold; '!' marks a miss; "
        "cpu c/f = the same ratio in process CPU seconds, less hurt by other load\n\n"
        "WHERE THE REST GOES: cold-run phases in seconds (medians)\n"
        f"{rest}\n"
        "plan = preprocessing lookup; decode = hash, decode and check every image; "
        "build = model and weights; macs = MAC count; metrics = scores and bootstrap "
        "intervals; save = row and predictions; board = leaderboard and ties; "
        "fwd 1st batch = the bare forward's first batch, included in fwd s; fwd "
        "steady = a second pass over the same batches\n\n"
        "SPREAD over the repeats (min-max)\n"
        f"{spread}\n"
        "best c/f = fastest cold / fastest forward: the runs least slowed by other "
        "load; cold/steady = cold against the forward's second pass (median)\n\n"
        "FLOOR: the shortest cold run these cores allow for the same work (medians)\n"
        f"{floor}\n"
        "floor = (fwd work + decode cpu + build cpu) / threads + head + after: "
        "decoding and the model build overlapping the forward perfectly, on the "
        "same cores; fwd work = fwd s x threads x thread eff, the share of the "
        "threads' time that is work (a one-thread pass against the threaded one); "
        "after = metrics, saving and leaderboard, which need the last embedding; "
        "'!' marks a floor above the cold/fwd target"
    )


def _format_memory(runs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        memory = run["memory"]
        rows.append(
            [
                run["spec"],
                str(memory["num_images"]),
                _mib(memory["rss_after_imports_kib"]),
                _mib(memory["peak_rss_kib"]),
                _mib(memory["peak_anon_kib"]),
                _mib(memory["peak_file_kib"]),
                _mib(memory["embeddings_kib"]),
                _mib(memory["pixel_store_kib"]),
            ]
        )
    table = _table(
        [
            "model",
            "images",
            "after imports",
            "peak RSS",
            "peak anon",
            "peak file",
            "embeddings",
            "pixel store",
        ],
        rows,
    )
    text = f"MEMORY: one cold run per size, fresh process, MiB\n{table}"
    if len(runs) == 2:
        small, large = (run["memory"] for run in runs)
        growth = [
            f"{label} {_mib(large[key] - small[key])}"
            for label, key in (
                ("peak RSS", "peak_rss_kib"),
                ("anon", "peak_anon_kib"),
                ("file", "peak_file_kib"),
                ("embeddings", "embeddings_kib"),
                ("pixel store", "pixel_store_kib"),
            )
        ]
        text += "\ngrowth from the small to the large set: " + ", ".join(growth)
    return (
        text + "\npeak RSS is VmHWM; anon and file are sampled every 20 ms; the pixel "
        "store (its size shown for scale) lives in a temporary file read and written "
        "at offsets, so it takes page cache, not resident memory"
    )


def _format_precision(runs: dict[str, Any]) -> str:
    rows = []
    for precision in ("float32", "auto"):
        row = runs[precision]["row"]
        rows.append(
            [
                f"{precision} ({row['precision']})",
                *(
                    _score(row[key])
                    for key in (
                        "val_accuracy",
                        "val_balanced_accuracy",
                        "test_accuracy",
                        "test_balanced_accuracy",
                    )
                ),
                f"{row['extract_seconds']:.2f}",
                f"{runs[precision]['cold_seconds']:.2f}",
            ]
        )
    table = _table(
        [
            "precision",
            "val acc",
            "val bal acc",
            "test acc",
            "test bal acc",
            "extract s",
            "cold s",
        ],
        rows,
    )
    agreement = runs.get("agreement")
    same = "n/a" if agreement is None else f"{agreement:.1%}"
    return (
        f"PRECISION: {LITE}, packaged ImageNet weights, one run each\n{table}\n"
        f"same predicted class on val: {same}"
    )


def _format_notebook(comparison: dict[str, Any]) -> str:
    data = comparison["data"]
    splits = ", ".join(f"{n} {s}" for s, n in data["splits"].items())
    rows = []
    for spec, entry in comparison["models"].items():
        colds = [run["cold_seconds"] for run in entry["lazy"]]
        lazy, best = statistics.median(colds), min(colds)
        notebook = entry["notebook"]
        if notebook is None:
            rows.append([spec, entry["keras"], "failed", "", "", f"{lazy:.2f}"])
            continue
        rows.append(
            [
                spec,
                entry["keras"],
                f"{notebook['seconds']:.1f}",
                f"{notebook['epochs']:.0f}",
                f"{notebook['val_acc_last']:.3f}",
                f"{lazy:.2f}",
                f"{best:.2f}",
                _versus(
                    notebook["seconds"] / lazy, TARGET_NOTEBOOK_OVER_COLD, below=False
                ),
                _versus(
                    notebook["seconds"] / best, TARGET_NOTEBOOK_OVER_COLD, below=False
                ),
            ]
        )
    headers = ["model", "keras", "notebook s", "epochs", "nb val acc"]
    headers += ["cold s", "best cold s", "nb/cold", "nb/best"]
    table = _table(headers, [row + [""] * (len(headers) - len(row)) for row in rows])
    return (
        f"NOTEBOOK: binary digit < 5 on the same images ({splits}); notebook "
        "protocol with FULL_EPOCHS=1 (TensorFlow, float32, weights=None), one run; "
        "lazyvision cold: median and fastest of the repeats\n"
        f"{table}\n"
        f"target: notebook / lazyvision cold >= {TARGET_NOTEBOOK_OVER_COLD:g}; the "
        "notebook "
        f"process took {comparison.get('wall_seconds', 0):.0f} s in all, with "
        "TensorFlow's import and the generators"
    )


def _versus(
    value: float, target: float, *, below: bool, percent: bool = False, digits: int = 2
) -> str:
    text = f"{value:.0%}" if percent else f"{value:.{digits}f}"
    missed = value > target if below else value < target
    return text + ("!" if missed else "")


def _score(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned numbers, a rule under the header."""
    widths = [
        max(len(str(cell)) for cell in column)
        for column in zip(headers, *rows, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


if __name__ == "__main__":
    sys.exit(main())
