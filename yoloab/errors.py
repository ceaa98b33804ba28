"""Typed errors that users can act on.

Every error yoloab raises on bad input derives from `YoloabError`; the CLI maps each class to an exit code in one
place (`yoloab.cli.app.EXIT_CODES`) and prints its message as one line, without a traceback unless
`YOLOAB_DEBUG=1`.
"""

from __future__ import annotations

import difflib
import errno
import sys
from collections.abc import Iterable
from types import TracebackType


def quiet_interrupt(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """A `sys.excepthook` that says a Ctrl-C that escaped (one pressed while modules import) in one line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("yoloab: stopped (Ctrl-C)\n")
        return
    sys.__excepthook__(kind, value, tb)


def nearest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to `n` candidates closest to `name`, case-insensitively, best first."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Format a ' (nearest: a, b)' suffix, or '' when nothing is close."""
    hits = nearest(name, candidates)
    return f" (nearest: {', '.join(hits)})" if hits else ""


def os_error_text(err: OSError) -> str:
    """An OSError as a user reads it: 'no space left on the device', else its strerror."""
    return "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))


def os_error_in_chain(err: BaseException, codes: Iterable[int]) -> OSError | None:
    """The first OSError with one of `codes` in an error's chain (`__cause__`, else `__context__`), or None."""
    wanted, seen = set(codes), set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in wanted:
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


class YoloabError(Exception):
    """Base class of every error caused by bad input or environment, reported to users as one line."""


class UnknownModuleError(YoloabError):
    """A module name that is neither registered with yoloab nor known to Ultralytics."""


class UnknownRoleError(YoloabError):
    """A module registered with a role, channel rule or host that yoloab does not know."""


class DuplicateModuleError(YoloabError):
    """A module name registered twice from two different places."""


class ModelConfigError(YoloabError):
    """A model yaml that cannot be read or built."""


class ModelRowError(ModelConfigError):
    """A model yaml row whose arguments cannot be what its module expects (a non-numeric channel count)."""


class RowFormError(ModelConfigError):
    """A model yaml row whose arguments do not fit its module's row form (their count, or a type): a model config error.

    Not a `ModelRowError`: a row written for another version of a module (a Conv-style `[c2, k, s]` for SPDConv)
    exits with the model-config code, 3.
    """


class VariantNameError(YoloabError):
    """A variant name that cannot be a file name inside the results directory (a path separator or `..`)."""


class UnknownLossError(YoloabError):
    """A box-loss name (`--loss`) that is neither in yoloab's loss catalog nor registered by a plugin."""


class LossRegistrationError(YoloabError):
    """A loss registered with a name that cannot be a variant or file name, or registered twice."""


class UnknownModelError(YoloabError):
    """A base model name that the installed Ultralytics does not ship."""


class PlacementError(YoloabError):
    """A placement that is malformed or selects no row."""


class PluginError(YoloabError):
    """A plugin file or entry point that fails to import."""


class UltralyticsCompatError(YoloabError):
    """The installed Ultralytics lacks an internal that yoloab relies on."""


class DatasetError(YoloabError):
    """A dataset that is missing or whose data yaml cannot be used for training."""


class SweepInputError(YoloabError):
    """A sweep setting that cannot be trained (bad `--train` key or value, seed, device or executor)."""


class SchedulerError(SweepInputError):
    """SLURM refused a job or did not answer.

    `sbatch` refuses an unknown partition or account, or a time over the limit; `squeue` fails where the controller
    does not answer. Exit code 2, as for a bad sweep setting.
    """


class SweepInterrupted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a run after its checkpoint was saved, when the user asked the sweep to stop (Ctrl-C).

    Not a `YoloabError`: the sweep catches it to stop cleanly, and no exit code is mapped to it.
    """


class ProfileInputError(YoloabError):
    """An image size, batch or device that cannot be profiled."""


class OptionValueError(YoloabError):
    """A command-line value that no command can use, refused while the options are read (`--nc 0`)."""


class ResultsError(YoloabError):
    """A results directory that is missing, empty or holds nothing matching the request."""


class ReportInputError(YoloabError):
    """A report option naming something that does not exist (an unknown `--columns` name)."""


class MissingSeedsError(YoloabError):
    """A comparison with fewer finished seeds per variant than `report --require-seeds` asks for (exit code 1).

    Not bad input: the store is incomplete. The message names every missing run and the command that trains it.

    Attributes:
        missing: the missing runs (`yoloab.seeds.MissingRun`).
    """

    def __init__(self, message: str, missing: list | None = None) -> None:
        super().__init__(message)
        self.missing = list(missing or [])


class OutputPathError(ResultsError):
    """An output folder (`--out`) that is a file, or lies under one: bad input, like a missing results directory."""


class StorageError(YoloabError):
    """A results directory that cannot be written: not a folder, read-only, or out of space."""


class UnsafePathError(StorageError):
    """A path under the results directory that is a symlink, lies under one, or leads outside it: never followed."""


class YoloabWarning(UserWarning):
    """Something the user should know that does not stop the command (a damaged record moved aside)."""


class PretrainedError(YoloabError):
    """A `--pretrained` file that is missing, is not an Ultralytics checkpoint, or belongs to another base model."""


class UnsafeCheckpointError(YoloabError):
    """A checkpoint naming objects outside the safe unpickler's allow-list (unpickling them could run code).

    Attributes:
        path: the file, which was not loaded.
        names: the objects it names that are not allowed (`posix.system`).
    """

    def __init__(self, message: str, path: object = None, names: list[str] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.names = list(names or [])


class UnknownRuntimeError(YoloabError):
    """A deployment runtime name that yoloab does not know."""


class MissingExtraError(YoloabError):
    """An optional dependency (an extra such as `yoloab[deploy]`) that is not installed."""
