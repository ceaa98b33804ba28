"""Every touch of Ultralytics internals, in one place, behind a version check.

Ultralytics resolves the module names of a yaml row with `globals()[name]` inside `ultralytics.nn.tasks`, and
applies width scaling and input channels only to modules in a set that is local to `parse_model`. Nothing outside
can join that set, so yoloab wraps `tasks.parse_model` instead of editing it:

1. rows naming a registered yoloab module are rewritten to a cheap `Conv` placeholder that carries the real module
   in its `act` slot, so Ultralytics itself computes the input channels and the width-scaled output channels, exactly
   as for its own `Conv`;
2. the original `parse_model` builds the model;
3. each placeholder is swapped for the real module, built with the channels Ultralytics computed;
4. the per-row summary Ultralytics printed is replayed with the real rows.

The model keeps its original yaml (with the custom names), so trainers that rebuild from the yaml, checkpoints and
DDP children all see the same model. Nothing is written into the Ultralytics package and no source is patched.
"""

from __future__ import annotations

import ast
import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import (
    ModelConfigError,
    ModelRowError,
    RowFormError,
    UltralyticsCompatError,
    UnknownModuleError,
    YoloabWarning,
    did_you_mean,
)
from ..registry import BLOCK_HOSTS_ALL, MODULES

TESTED = ((8, 4, 0), (8, 5, 0))  # [low, high): the Ultralytics releases this integration was written against
CONV_PARAMS = ("c1", "c2", "k", "s", "p", "g", "d", "act")

_state: dict[str, Any] = {"installed": False}


def ultralytics_version() -> str:
    """The installed Ultralytics version string."""
    import ultralytics

    return ultralytics.__version__


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_compatibility() -> None:
    """Check that the installed Ultralytics has the internals yoloab relies on.

    Raises:
        UltralyticsCompatError: an internal is missing or has changed shape; names the version and what is missing.
    """
    version = ultralytics_version()
    hint = (
        f"yoloab {__version__} was tested with ultralytics>={'.'.join(map(str, TESTED[0]))},"
        f"<{'.'.join(map(str, TESTED[1]))}; install one: pip install 'ultralytics>=8.4,<8.5'"
    )
    try:
        from ultralytics.nn import tasks
    except ImportError as err:  # pragma: no cover - depends on a broken install
        raise UltralyticsCompatError(
            f"Ultralytics {version}: cannot import ultralytics.nn.tasks ({err}); {hint}"
        ) from err
    problems = []
    parse = getattr(tasks, "parse_model", None)
    original = getattr(parse, "__yoloab_original__", parse)
    if not callable(original) or list(inspect.signature(original).parameters)[:3] != ["d", "ch", "verbose"]:
        problems.append("tasks.parse_model(d, ch, verbose)")
    conv = getattr(tasks, "Conv", None)
    if conv is None or tuple(inspect.signature(conv.__init__).parameters)[1:9] != CONV_PARAMS:
        problems.append("tasks.Conv(c1, c2, k, s, p, g, d, act)")
    if not isinstance(getattr(tasks, "LOGGER", None), logging.Logger):
        problems.append("tasks.LOGGER")
    if problems:
        raise UltralyticsCompatError(f"Ultralytics {version}: could not find {', '.join(problems)}; {hint}")
    if not TESTED[0] <= _version_tuple(version) < TESTED[1]:
        logging.getLogger("yoloab").warning("Ultralytics %s is outside the tested range; %s", version, hint)


def install() -> None:
    """Wrap `ultralytics.nn.tasks.parse_model` once per process (idempotent)."""
    if _state["installed"]:
        return
    check_compatibility()
    from ultralytics.nn import tasks

    if not hasattr(tasks.parse_model, "__yoloab_original__"):
        original = tasks.parse_model

        def parse_model(d, ch, verbose=True):  # signature mirrors the original; see module docstring
            return _parse_model(original, d, ch, verbose)

        parse_model.__yoloab_original__ = original
        parse_model.__doc__ = original.__doc__
        tasks.parse_model = parse_model
    _state["installed"] = True


# --------------------------------------------------------------------------------------------------------------------
# row resolution


def ultralytics_module_names() -> set[str]:
    """Names a yaml row may use that Ultralytics itself resolves (module classes visible in `tasks`)."""
    from ultralytics.nn import tasks

    return {k for k, v in vars(tasks).items() if isinstance(v, type) and issubclass(v, nn.Module)}


def _resolves_natively(name: str) -> bool:
    import torchvision
    from ultralytics.nn import tasks

    if name.startswith("nn."):
        return hasattr(torch.nn, name[3:])
    if name.startswith("torchvision.ops."):
        return hasattr(torchvision.ops, name[16:])
    return isinstance(getattr(tasks, name, None), type)


def custom_entry(name: Any):
    """The registry entry a yaml row name refers to when yoloab (not Ultralytics) must build it, else None."""
    if not isinstance(name, str) or name not in MODULES:
        return None
    entry = MODULES.get(name)
    return None if entry.cls.__module__.startswith("ultralytics.") else entry


def validate_rows(d: dict) -> None:
    """Check that every row names a module that Ultralytics or yoloab can build.

    Raises:
        ModelConfigError: a row is malformed.
        UnknownModuleError: a row names an unknown module; the message names the row and the nearest names.
    """
    where = d.get("yaml_file") or "model yaml"
    notes: dict[tuple[str, str], list[tuple[int, list]]] = {}  # (module, note) -> the rows it is about
    backbone, head = d.get("backbone"), d.get("head")
    if not isinstance(backbone, list) or not isinstance(head, list):
        raise ModelConfigError(f"{where}: expected 'backbone' and 'head' lists of [from, repeats, module, args] rows")
    for i, row in enumerate(backbone + head):
        section = "backbone" if i < len(backbone) else "head"
        if not (isinstance(row, (list, tuple)) and len(row) == 4 and isinstance(row[3], list)):
            raise ModelConfigError(f"{where}: row {i} ({section}) is {row!r}; expected [from, repeats, module, [args]]")
        name = row[2]
        if not isinstance(name, str):
            raise ModelConfigError(f"{where}: row {i} ({section}) names module {name!r}; expected a class name")
        if name in MODULES or _resolves_natively(name) or block_host(name) is not None:
            _check_first_arg(d, i, section, row, where)
            note = _check_row_form(d, i, section, row, where) if name in MODULES else None
            if note is not None:
                notes.setdefault((name, note), []).append((i, list(row[3])))
            continue
        why = _block_host_error(name)
        if why is not None:
            raise UnknownModuleError(f"{where}: row {i} ({section}) {name} {why}")
        known = set(MODULES.names()) | set(MODULES.aliases()) | ultralytics_module_names()
        raise UnknownModuleError(
            f"{where}: row {i} ({section}) names unknown module '{name}'{did_you_mean(name, known)}; "
            f"yoloab modules: {', '.join(MODULES.names())} (plugins: --plugin FILE)"
        )
    _warn_row_notes(where, notes)


def _check_first_arg(d: dict, i: int, section: str, row: list, where: str) -> None:
    """A first argument (the output channels, width-scaled) that is text must be a name parse_model resolves.

    parse_model reads a string argument as a yaml key or a Python literal and otherwise keeps the text, which then
    fails deep inside the build (`'<' not supported between 'int' and 'str'`); modules whose arguments are their own
    (an "input"-rule backbone's size, e.g. `[small]`) are left to their constructor.
    """
    from ..registry import MODULES

    if row[2] in MODULES and MODULES.get(row[2]).channels != "conv":
        return
    first = row[3][0] if row[3] else None
    if isinstance(first, str) and first != "nc" and first not in d and isinstance(_literal(first, d), str):
        raise ModelRowError(
            f"{where}: row {i} ({section}) {row[2]} has output channels {first!r}; expected a number (or nc)"
        )


_ROW_NOTES_SHOWN: set[str] = set()  # each row-note warning once per process (a model is built several times)


def _check_row_form(d: dict, i: int, section: str, row: list, where: str) -> str | None:
    """Refuse arguments that do not fit the module's row form; return the note of a form read differently elsewhere.

    The row form is data on the registry entry (`ModuleEntry.row_form`, read from the constructor): a Conv-style
    `[c2, 3, 2]` for SPDConv, which has no stride, is one line naming the file, the row, the form found and the
    form expected, instead of a TypeError from deep inside the build. A form that builds but that a well-known
    public version of the module reads differently (`ModuleEntry.row_notes`: SPDConv `[c2]`) returns its note,
    which `validate_rows` turns into one warning per module and note.

    Returns:
        The note, or None.

    Raises:
        RowFormError: too many or too few arguments, or a value of the wrong type (a string where an int belongs).
    """
    entry = MODULES.get(row[2])
    args = [_literal(a, d) for a in row[3]]
    if entry.channels == "conv" and args and isinstance(args[0], str):
        args[0] = 0  # a name parse_model resolves itself (nc); _check_first_arg refused any other text
    shown = f"{row[2]} {list(row[3])}"
    why = entry.row_mismatch(args)
    if why is not None:
        hint = ""
        if entry.role == "downsample" and len(args) == 3 and entry.conv_args < 3:
            kept = ", ".join(("c2", "k", "s")[: entry.conv_args])
            hint = f"; a Conv row [c2, k, s] becomes {entry.name} [{kept}] (the module does the downsampling)"
        raise RowFormError(
            f"{where}: row {i} ({section}) {shown} does not fit {entry.name}'s row form "
            f"{entry.row_form_text}: {why}{hint}"
        )
    return entry.row_note(args)


def _warn_row_notes(where: str, notes: dict[tuple[str, str], list[tuple[int, list]]]) -> None:
    """One warning line per module and note, listing the rows it is about; each once per process."""
    for (name, note), rows in notes.items():
        label = "row" if len(rows) == 1 else "rows"
        message = (
            f"{where}: {name} {label} {', '.join(str(i) for i, _ in rows)} "
            f"({', '.join(str(args) for _, args in rows)}): {note}"
        )
        if message not in _ROW_NOTES_SHOWN:
            _ROW_NOTES_SHOWN.add(message)
            warnings.warn(message, YoloabWarning, stacklevel=3)


def check_train_values(args: dict[str, Any]) -> None:
    """Check trainer argument values with Ultralytics' own checks, before anything trains.

    Types and ranges go through `ultralytics.cfg.check_cfg`; the optimizer name through the trainer's
    `build_optimizer` on a one-parameter model (the list of names is local to it).

    Raises:
        SweepInputError: the first value Ultralytics would refuse, naming it.
    """
    from ultralytics.cfg import check_cfg
    from ultralytics.engine.trainer import BaseTrainer

    from ..errors import SweepInputError

    for key, value in args.items():
        try:
            check_cfg({key: value})
        except (TypeError, ValueError) as err:
            raise SweepInputError(f"--train {key}={'' if value is None else value}: {err}") from err
    name = args.get("optimizer")
    if name is not None and str(name).lower() != "auto":
        try:
            with quiet_logs(True):
                BaseTrainer.build_optimizer(None, nn.Linear(1, 1), name=str(name))
        except NotImplementedError as err:
            first = str(err).split(". ")[0]
            raise SweepInputError(f"--train optimizer={name}: {first}") from err
        except Exception:  # noqa: S110 - any other failure of the dummy build is not about the name
            pass


@dataclass
class _Pending:
    """What to build in place of a placeholder row."""

    entry: Any
    args: list


class _PendingAct(nn.Identity):
    """Rides in the placeholder Conv's `act` slot (Conv accepts any nn.Module there) until the swap."""

    def __init__(self, pending: _Pending) -> None:
        super().__init__()
        self.pending = pending

    def extra_repr(self) -> str:
        return f"yoloab placeholder for {self.pending.entry.name}"

    def __repr__(self) -> str:
        return f"<{self.pending.entry.name}>"


def _literal(value: Any, d: dict) -> Any:
    """Resolve a string argument the way parse_model does (names from the yaml, else a Python literal)."""
    if not isinstance(value, str):
        return value
    if value in d:
        return d[value]
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _placeholder_args(entry: Any, args: list, d: dict) -> list:
    rest = [_literal(a, d) for a in (args[1:] if entry.channels == "conv" else args)]
    # "input"-rule modules fix their own outputs; 8 only feeds Ultralytics' channel bookkeeping for this row.
    c2 = args[0] if entry.channels == "conv" and args else 8
    return [c2, 1, 1, None, 1, 1, _PendingAct(_Pending(entry, rest))]


def _build_real(entry: Any, c1: int, c2: int | None, args: list, where: str = "") -> nn.Module:
    """Build a registered module where its placeholder stood.

    Args:
        entry: the module's registry entry.
        c1: input channels.
        c2: output channels (`conv` rule only).
        args: the row's arguments after c2 (`conv`) or all of them (`same`, `input`).
        where: the file and row, for the message (`x.yaml: row 3 (backbone)`).

    Raises:
        ModelConfigError: the constructor refused the arguments; names the file, the row and the row form.
    """
    call = [c1, c2, *args] if entry.channels == "conv" else [c1, *args]
    try:
        return entry.cls(*call)
    except (TypeError, ValueError) as err:
        at = f"{where} " if where else ""
        raise ModelConfigError(
            f"{at}{entry.name}{tuple(call)} cannot be built: {err} (row form {entry.row_form_text})"
        ) from err


def _row_where(d: dict, i: int) -> str:
    """`x.yaml: row 3 (backbone)`: the place of row i, for messages."""
    section = "backbone" if i < len(d.get("backbone") or ()) else "head"
    return f"{d.get('yaml_file') or 'model yaml'}: row {i} ({section})"


# --------------------------------------------------------------------------------------------------------------------
# "same"-rule rows (c1 -> c1: attention, upsampling)
#
# Ultralytics sets a row's output channels to its input's only for modules outside its own sets, and then does not
# pass the input channels to the constructor. Two of its branches do what a c1 -> c1 module needs: `nn.BatchNorm2d`
# is built with the input channels (and leaves the row's output channels at the previous row's, right when the row
# reads -1), and `Index` takes its output channels from its first argument. A row reading -1 gets the first; any
# other row the second, with its input channels read from a build of the rows before it.


def _same_rule_row(original, d: dict, ch: int, i: int, row: list) -> list:
    f = row[0]
    if f == -1 or f == i - 1:
        return [f, row[1], "nn.BatchNorm2d", []]
    if not isinstance(f, int):
        raise ModelConfigError(f"{_row_where(d, i)} {row[2]} reads {f}; a c1 -> c1 module reads one row")
    src = f if f >= 0 else i + f
    rows = d["backbone"] + d["head"]
    probe = {**d, "backbone": [list(r) for r in rows[: src + 1]], "head": [[-1, 1, "nn.BatchNorm2d", []]]}
    probe.pop("yoloab", None)
    model, _ = _parse_model(original, probe, ch, False)
    return [f, row[1], "Index", [model[-1].num_features, 0]]


def _same_rule_input(layer: nn.Module, row: list) -> int:
    first = layer[0] if isinstance(layer, nn.Sequential) else layer
    return first.num_features if isinstance(first, nn.BatchNorm2d) else row[3][0]


# --------------------------------------------------------------------------------------------------------------------
# block hosts (`C2f_Faster`): Ultralytics builds its own host, yoloab replaces the inner blocks


def block_host(name: Any) -> tuple[str, Any] | None:
    """(`C2f`, the block's entry) for a row name `C2f_Faster` that names a host and a registered block module."""
    if not isinstance(name, str) or "_" not in name:
        return None
    host, _, block = name.partition("_")
    if host not in BLOCK_HOSTS_ALL or block not in MODULES:
        return None
    entry = MODULES.get(block)
    return (host, entry) if entry.role == "block" and host in entry.hosts else None


def _block_host_error(name: str) -> str | None:
    """Why a `Host_Block` row name does not build, or None when it is not of that form."""
    host, _, block = name.partition("_")
    if host not in BLOCK_HOSTS_ALL or not block:
        return None
    blocks = [e.name for e in MODULES if e.role == "block"]
    if block not in MODULES:
        return f"names block '{block}' in host {host}, which is not registered{did_you_mean(block, blocks)}; " + (
            f"block modules: {', '.join(blocks) or 'none'}"
        )
    entry = MODULES.get(block)
    if entry.role != "block":
        return f"puts {entry.name} ({entry.role} module) in host {host}; block modules: {', '.join(blocks)}"
    return f"puts {entry.name} in {host}, which it does not fit; its hosts: {', '.join(entry.hosts)}"


def _swap_inner_blocks(layer: nn.Module, entry: Any, where: str = "") -> None:
    """Replace every Bottleneck / PSABlock inside a host with `entry.cls(c, c, shortcut)`."""
    from ultralytics.nn.modules.block import Bottleneck, C3k, PSABlock

    hosts = list(layer) if isinstance(layer, nn.Sequential) else [layer]  # a host row with n > 1 outside a C2f
    for host in hosts:
        containers = [host.m]
        containers += [b.m for b in host.m if isinstance(b, C3k)]  # yolo11 c3k=True: the Bottlenecks inside C3k
        for container in containers:
            for j, block in enumerate(container):
                if isinstance(block, Bottleneck):
                    c1, c2, shortcut = block.cv1.conv.in_channels, block.cv2.conv.out_channels, block.add
                elif isinstance(block, PSABlock):
                    c1 = c2 = block.ffn[0].conv.in_channels
                    shortcut = block.add
                else:
                    continue
                container[j] = _build_real(entry, c1, c2, [shortcut], where)


def _parse_model(original, d: dict, ch: int, verbose: bool):
    validate_rows(d)
    rows = d["backbone"] + d["head"]
    custom = {i: custom_entry(row[2]) for i, row in enumerate(rows)}
    custom = {i: e for i, e in custom.items() if e is not None}
    hosted = {i: block_host(row[2]) for i, row in enumerate(rows)}
    hosted = {i: h for i, h in hosted.items() if h is not None}
    if not custom and not hosted:
        return original(d, ch, verbose)

    d = copy(d)
    nb = len(d["backbone"])
    new_rows = []
    for i, row in enumerate(rows):
        if i in hosted:
            row = [row[0], row[1], hosted[i][0], row[3]]
        elif i in custom and custom[i].channels == "same":
            row = _same_rule_row(original, d, ch, i, row)
        elif i in custom:
            row = [row[0], row[1], "Conv", _placeholder_args(custom[i], list(row[3]), d)]
        new_rows.append(row)
    d["backbone"], d["head"] = new_rows[:nb], new_rows[nb:]

    from ultralytics.nn import tasks

    replay = _Replay()
    tasks.LOGGER.addFilter(replay)
    try:
        model, save = original(d, ch, verbose)
    finally:
        tasks.LOGGER.removeFilter(replay)

    lines = {}
    for i, entry in custom.items():
        layer = model[i]
        parts = list(layer) if isinstance(layer, nn.Sequential) else [layer]
        if entry.channels == "same":
            c1 = _same_rule_input(layer, new_rows[i])
            args = [_literal(a, d) for a in rows[i][3]]
            built = [_build_real(entry, c1, None, args, _row_where(d, i)) for _ in parts]
            shown = [c1, *args]
        else:
            first = parts[0]
            shown = [first.conv.in_channels, first.conv.out_channels][: 2 if entry.channels == "conv" else 1]
            shown += first.act.pending.args
            built = [
                _build_real(entry, p.conv.in_channels, p.conv.out_channels, p.act.pending.args, _row_where(d, i))
                for p in parts
            ]
        real = nn.Sequential(*built) if len(built) > 1 else built[0]
        real.i, real.f = layer.i, layer.f
        real.type = f"{entry.cls.__module__}.{entry.cls.__qualname__}"
        real.np = sum(x.numel() for x in real.parameters())
        model[i] = real
        lines[i] = f"{i:>3}{real.f!s:>20}{len(built):>3}{real.np:10.0f}  {real.type:<45}{shown!s:<30}"
    for i, (_, entry) in hosted.items():
        layer = model[i]
        _swap_inner_blocks(layer, entry, _row_where(d, i))
        layer.np = sum(x.numel() for x in layer.parameters())
        lines[i] = f"{i:>3}{layer.f!s:>20}{1:>3}{layer.np:10.0f}  {rows[i][2]:<45}{rows[i][3]!s:<30}"
    for message in replay.messages:
        head = message[:3].strip()
        tasks.LOGGER.info(lines.get(int(head), message) if head.isdigit() else message)
    return model, save


class _Replay(logging.Filter):
    """Holds back what parse_model logs, so the rows can be re-emitted with the real modules."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


def read_checkpoint(path: Path) -> nn.Module:
    """The model of an Ultralytics checkpoint (EMA first), FP32, eval mode, loaded without running code.

    Ultralytics' own loader in its safe mode, with yoloab's and registered plugins' classes allowed (see
    `checkpoints`).

    Raises:
        UnsafeCheckpointError: the file names objects outside the allow-list; nothing of it was unpickled.
    """
    model, _ = safe_load_checkpoint(path)
    return model


def intersect_dicts(source: dict, target: dict) -> dict:
    """Ultralytics' transfer rule: the entries of `source` whose name is in `target` with the same shape."""
    from ultralytics.utils.torch_utils import intersect_dicts as rule

    return rule(source, target)


def datasets_dir() -> Path:
    """Ultralytics' global datasets folder, where it resolves relative dataset roots."""
    from ultralytics.utils import DATASETS_DIR

    return Path(DATASETS_DIR)


def trainer_defaults() -> dict[str, Any]:
    """Every argument Ultralytics' trainer accepts, with its default (`ultralytics/cfg/default.yaml`)."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    return dict(DEFAULT_CFG_DICT)


@contextmanager
def quiet_logs(quiet: bool) -> Iterator[None]:
    """Hide Ultralytics' own output (epoch lines and progress bars follow its logger's level) while active.

    Its handlers write to the `sys.stdout` of import time; they are pointed at the current `sys.stdout` for the
    duration, so that a Rich live display redirecting stdout can place the lines above its progress bar.
    """
    import sys

    from ultralytics.utils import LOGGER

    level = LOGGER.level
    streams = [(h, h.stream) for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    try:
        if quiet:
            LOGGER.setLevel(logging.WARNING)
        for handler, stream in streams:
            if stream in (sys.__stdout__, sys.__stderr__):
                handler.setStream(sys.stdout if stream is sys.__stdout__ else sys.stderr)
        yield
    finally:
        LOGGER.setLevel(level)
        for handler, stream in streams:
            handler.setStream(stream)


def import_ultralytics() -> None:
    """Import Ultralytics (once) with what its import prints sent to stderr, so that stdout keeps yoloab's output.

    On a fresh `YOLO_CONFIG_DIR` the import logs "Creating new Ultralytics Settings ..." to stdout, before a machine
    format's data or a sweep's first line. Its logger's handlers bind the `sys.stdout` of import time: they are then
    given the stdout they would have had, so that later lines go where they always went.
    """
    import sys

    if "ultralytics.utils" in sys.modules:
        return
    real = sys.stdout
    with redirect_stdout(sys.stderr):
        from ultralytics.utils import LOGGER
    for handler in LOGGER.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            _swap_stream(handler, real)


@contextmanager
def logs_to_stderr() -> Iterator[None]:
    """Send what Ultralytics logs to stderr while active, so that stdout carries only a machine format's data.

    Its handlers write to the `sys.stdout` of import time (a scale-less yaml logs "no model scale passed" there).
    """
    import sys

    import_ultralytics()
    from ultralytics.utils import LOGGER

    streams = [(h, h.stream) for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    try:
        for handler, stream in streams:
            if stream is not sys.stderr and stream is not sys.__stderr__:
                _swap_stream(handler, sys.stderr)
        yield
    finally:
        for handler, stream in streams:
            _swap_stream(handler, stream)


def _swap_stream(handler: logging.StreamHandler, stream: Any) -> None:
    """`handler.setStream` without its flush of the old stream, which may be closed.

    The stdout of import time can be a test runner's capture that has ended; `setStream` then raises 'I/O operation on
    closed file'.
    """
    with handler.lock:
        handler.stream = stream


def fuse_drops(model: nn.Module) -> list[tuple[int, str, str]]:
    """The detection-head branches that `fuse()` will remove from a model (YOLOv10's and YOLO26's dual heads).

    A head with a one-to-one branch beside the one-to-many one runs both in training and in an unfused forward;
    `Detect.fuse()` keeps the branch its `end2end` selects and sets the other to None. Call before fusing.

    Returns:
        (row, head class name, the branch dropped: `one-to-one` or `one-to-many`) for each such head.
    """
    from ultralytics.nn.modules.head import Detect

    drops = []
    for m in model.modules():
        if (
            isinstance(m, Detect)
            and getattr(m, "one2one_cv2", None) is not None
            and getattr(m, "cv2", None) is not None
        ):
            branch = "one-to-many" if getattr(m, "end2end", False) else "one-to-one"
            drops.append((int(getattr(m, "i", -1)), type(m).__name__, branch))
    return drops


# --------------------------------------------------------------------------------------------------------------------
# per-image validation statistics

VAL_STAT_KEYS = ("tp", "conf", "pred_cls", "target_cls")  # what DetMetrics.process hands to ap_per_class


class ValStatsCapture:
    """Keeps the per-image statistics of the last final (non-training) validation a model runs.

    Ultralytics' detection validator appends one entry per image to `validator.metrics.stats` (match flags at the 10
    IoU thresholds, confidences and classes of the predictions, classes of the labels), concatenates them in
    `DetMetrics.process` for `ap_per_class`, then clears them before `on_val_end`. The capture snapshots the lists
    after every batch and concatenates them the same way at `on_val_end`, next to the mAP that pass computed, so the
    stored arrays reproduce the stored mAP exactly. Validation during training epochs (`validator.training`) is
    ignored: only the final validation of the best checkpoint (or a re-validation) counts.

    For the AP by object size it also keeps, per image, COCO's own matching of the predictions (`yoloab.size_ap`),
    which Ultralytics' `tp` cannot give: COCO ignores labels outside an area range and matches greedily by score.
    The validator's `update_metrics` is wrapped on the instance (the batch and the predictions are local to its
    loop); after Ultralytics' own update, each image's predictions and labels are scaled to the original image's
    pixels as Ultralytics' COCO JSON export scales them (`scale_preds`, `ops.scale_boxes`) and matched. Ultralytics'
    statistics, and so its mAP, are left as they were.

    Attributes:
        result: the arrays of the last final validation, or None when none ran or the internals did not match;
            `coco_match`, `pred_area` and `target_area` only where the size matching ran for every image.
    """

    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self._rows: dict[str, list] | None = None
        self._sizes: list[tuple[Any, Any, Any]] | None = None  # per image: COCO match codes, box areas, label areas

    def attach(self, model: Any) -> ValStatsCapture:
        """Register the callbacks on an Ultralytics `YOLO` model (its trainer and validators share them)."""
        model.add_callback("on_val_start", self._start)
        model.add_callback("on_val_batch_end", self._batch_end)
        model.add_callback("on_val_end", self._end)
        return self

    @staticmethod
    def _usable(validator: Any) -> bool:
        stats = getattr(getattr(validator, "metrics", None), "stats", None)
        return not getattr(validator, "training", True) and isinstance(stats, dict) and set(VAL_STAT_KEYS) <= set(stats)

    def _start(self, validator: Any) -> None:
        self._rows = None
        self._sizes = [] if _after_update_metrics(validator, self._match_sizes) else None

    def _match_sizes(self, validator: Any, preds: list[dict[str, Any]], batch: dict[str, Any]) -> None:
        """COCO's per-image matching of one batch (`yoloab.size_ap.match_image`), in original-image pixels."""
        if self._sizes is None or getattr(validator, "training", True):
            return
        from ultralytics.utils import ops

        from ..size_ap import match_image, xyxy_to_xywh

        try:
            for si, pred in enumerate(preds):
                pbatch = validator._prepare_batch(si, batch)
                dt = xyxy_to_xywh(validator.scale_preds(pred, pbatch)["bboxes"].float().cpu().numpy())
                shape, pad = pbatch["ori_shape"], pbatch["ratio_pad"]
                gt = ops.scale_boxes(pbatch["imgsz"], pbatch["bboxes"].clone(), shape, pad)  # as its JSON export
                gt = xyxy_to_xywh(gt.float().cpu().numpy())
                conf, cls = pred["conf"].float().cpu().numpy(), pred["cls"].cpu().numpy()
                codes = match_image(dt, conf, cls, gt, pbatch["cls"].cpu().numpy())
                self._sizes.append((codes, dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]))
        except Exception as err:  # noqa: BLE001 - an add-on statistic must never fail the validation it watches
            logging.getLogger("yoloab").warning("AP by object size not stored: %s: %s", type(err).__name__, err)
            self._sizes = None

    def _batch_end(self, validator: Any) -> None:
        if self._usable(validator):
            # DetMetrics clears these lists in place before on_val_end, so keep our own references
            self._rows = {k: list(validator.metrics.stats[k]) for k in VAL_STAT_KEYS}

    def _end(self, validator: Any) -> None:
        import numpy as np

        rows, self._rows = self._rows, None
        if rows is None or not self._usable(validator):
            return
        files = list(getattr(getattr(validator.dataloader, "dataset", None), "im_files", []))
        if len(files) != len(rows["tp"]):  # e.g. a DDP rank holding a shard: no faithful per-image view
            logging.getLogger("yoloab").warning(
                "per-image validation statistics not stored: %d images in the loader, %d in the validator's stats",
                len(files),
                len(rows["tp"]),
            )
            return
        box = validator.metrics.box
        self.result = {
            **{k: np.concatenate(rows[k], 0) for k in VAL_STAT_KEYS},  # as DetMetrics.process concatenates them
            "pred_count": np.array([len(c) for c in rows["conf"]], dtype=np.int64),
            "target_count": np.array([len(c) for c in rows["target_cls"]], dtype=np.int64),
            "im_files": files,
            "map50": float(box.map50),
            "map50_95": float(box.map),
        }
        sizes, self._sizes = self._sizes, None
        if sizes is None:
            return
        if [len(c) for c, _, _ in sizes] != [len(c) for c in rows["conf"]] or [len(a) for _, _, a in sizes] != [
            len(c) for c in rows["target_cls"]
        ]:
            logging.getLogger("yoloab").warning("AP by object size not stored: its matching saw other images")
            return
        for i, key in enumerate(("coco_match", "pred_area", "target_area")):
            self.result[key] = np.concatenate([s[i] for s in sizes], 0)


def _after_update_metrics(validator: Any, hook: Any) -> bool:
    """Have `hook(validator, preds, batch)` called after each `validator.update_metrics(preds, batch)`, once per hook.

    The wrapper is set on the instance, once: a trainer reuses its validator for every epoch and the final pass.

    Returns:
        False where the validator lacks the methods the hook relies on (another task, another Ultralytics).
    """
    hooks = vars(validator).get("_yoloab_update_hooks")
    if hooks is None:
        original = getattr(validator, "update_metrics", None)
        if not all(callable(getattr(validator, n, None)) for n in ("update_metrics", "_prepare_batch", "scale_preds")):
            return False
        hooks = []

        def update_metrics(preds: Any, batch: Any) -> None:
            original(preds, batch)
            for h in hooks:
                h(validator, preds, batch)

        validator.update_metrics = update_metrics
        validator._yoloab_update_hooks = hooks
    if hook not in hooks:
        hooks.append(hook)
    return True


def capture_val_stats(model: Any) -> ValStatsCapture:
    """Start capturing the per-image statistics of `model`'s final validation (see `ValStatsCapture`)."""
    return ValStatsCapture().attach(model)


# safe checkpoint loading, exporting and the trainer's state, in submodules so that no file grows past a reader's
# patience
from .checkpoints import read_state, safe_load_checkpoint, safe_loading  # noqa: E402, F401  (re-exported)
from .export import export_model, tensorrt_runner  # noqa: E402, F401  (re-exported)
from .loss import attach_box_loss  # noqa: E402, F401  (re-exported)
from .trainer_state import output_to, restore_rng_state, rng_state  # noqa: E402, F401  (re-exported)
