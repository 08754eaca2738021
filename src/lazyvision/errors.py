"""The exceptions lazyvision raises, under one root."""

from __future__ import annotations


class LazyVisionError(Exception):
    """Root of every error lazyvision raises on purpose."""


class DataError(LazyVisionError, ValueError):
    """The dataset, a CSV, a label or a data argument cannot be used."""


class ImageError(DataError):
    """One image file cannot be used.

    Attributes:
        path: The file, as given.
        reason: Short words a report can print ("truncated", "not an image").
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str]]:
        # Rebuilt from its two fields when it travels back from a worker process.
        return (type(self), (self.path, self.reason))


class ModelError(LazyVisionError, RuntimeError):
    """A backbone is unknown or cannot run."""


class WeightsError(ModelError):
    """A backbone's weights cannot be had."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint would need pickled code to load, and is refused."""


class BudgetExceeded(LazyVisionError, TimeoutError):
    """A backbone ran past its time budget."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time limit), taken as Ctrl-C.

    The command line raises it from its SIGTERM handler, so that a run stopped
    that way saves what finished, as on Ctrl-C. The library installs no signal
    handler itself; a program that wants the same raises this from its own.
    """
