"""The module registry: one entry per plug-in module, with its metadata as data.

Modules register once with the `register_module` decorator (timm/mmengine style). The entry carries what the rest
of yoloab needs to know about a module: its role (see `yoloab.roles`), how its constructor
takes channels, the paper it comes from and the placement its source article used. Registering makes the name
usable in Ultralytics yaml rows once `yoloab` is imported (see `yoloab._ultralytics`).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import DuplicateModuleError, UnknownModuleError, UnknownRoleError, did_you_mean
from .roles import ROLES

if TYPE_CHECKING:
    from torch import nn

Role = Literal["downsample", "block", "attention", "upsample", "sppf", "backbone"]
ChannelRule = Literal["conv", "input", "same"]
Scope = Literal["backbone", "head", "all", "sppf", "neck-outputs"]

_PACKAGE_DIR = Path(__file__).resolve().parent
CHANNEL_RULES: dict[str, str] = {
    "conv": "(c1, c2, *args): yaml args[0] is c2, width-scaled like Ultralytics' Conv; c1 comes from the input",
    "input": "(c1, *args): c1 comes from the input, nothing is width-scaled; the module fixes its own outputs",
    "same": "(c1, *args): c1 comes from the input and the output has c1 channels (attention, upsampling)",
}
BLOCK_HOSTS = ("C2f", "C3k2", "C3")  # hosts of every block module; C2PSA only where the module says it fits
BLOCK_HOSTS_ALL = (*BLOCK_HOSTS, "C2PSA")


@dataclass(frozen=True)
class Placement:
    """A rule selecting a role's candidate rows: a scope and, optionally, the output strides to keep.

    Attributes:
        scope: `backbone`, `head` or `all`; for attention also `sppf` (after the SPPF row) and `neck-outputs` (after
            each map Detect reads). The stem (row 0) is never a candidate.
        strides: output strides of the rows to keep (4 = P2, 8 = P3, ...); empty keeps every stride.
    """

    scope: Scope
    strides: tuple[int, ...] = ()

    def __str__(self) -> str:
        levels = ",".join(f"P{s.bit_length() - 1}" for s in self.strides)
        return f"{self.scope}:{levels}" if levels else self.scope


_PLAIN_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str, "None": type(None)}


@dataclass(frozen=True)
class RowArg:
    """One argument of a module's yaml row, read from its constructor's signature.

    Attributes:
        name: the constructor parameter (`c2` for the width-scaled output channels of a `conv`-rule row).
        types: the plain types its annotation allows (`int`, `float`, `bool`, `str`, `None`); empty when it names
            anything else (a class, a callable) or nothing, and then any value is accepted.
        required: whether the constructor has no default for it.
        default: the default, shown in the row form (`k=3`); None when required.
    """

    name: str
    types: tuple[type, ...] = ()
    required: bool = True
    default: object = None

    def __str__(self) -> str:
        if self.required:
            return self.name
        return f"{self.name}={self.default.__name__ if isinstance(self.default, type) else repr(self.default)}"

    def accepts(self, value: object) -> bool:
        """Whether a yaml value (after Ultralytics' own reading of strings) fits this argument's annotation."""
        if not self.types:
            return True
        if isinstance(value, bool):
            return bool in self.types
        if isinstance(value, int):
            return int in self.types or float in self.types
        return isinstance(value, tuple(t for t in self.types if t is not int and t is not bool))

    def expected(self) -> str:
        """What belongs in this slot, for messages (`an int`, `a bool`, `a float or None`)."""
        names = [{"NoneType": "None", "str": "string"}.get(t.__name__, t.__name__) for t in self.types]
        article = "an" if names[0][0] in "aeiou" else "a"
        return f"{article} {' or '.join(names)}"


@dataclass(frozen=True)
class RowNote:
    """A yaml row form that is valid for a module but that a well-known public version of it reads differently.

    The row builds; yoloab warns once, in one line, saying what it builds and how the public version differs.

    Attributes:
        says: the warning, after the row's place and arguments.
        count: the number of yaml arguments the note is about (SPDConv: 1, the tutorials' `[c2]`); None: any count.
        first_at_least: the note applies only when the first argument is a number at least this large (an attention
            row given a channel count where yoloab reads a hyper-parameter); None: any first argument.
    """

    says: str
    count: int | None = None
    first_at_least: float | None = None

    def applies(self, args: list) -> bool:
        """Whether the note is about a row with these yaml arguments."""
        if self.count is not None and len(args) != self.count:
            return False
        if self.first_at_least is None:
            return self.count is not None or bool(args)
        first = args[0] if args else None
        return isinstance(first, (int, float)) and not isinstance(first, bool) and first >= self.first_at_least


def channel_count_note(name: str, first: str) -> RowNote:
    """The note of a c1 -> c1 module (attention) whose first yaml argument is a hyper-parameter, not channels.

    Public YOLO yaml files give attention rows a channel count (`[-1, 1, EMA, [256]]`, `[-1, 1, CoordAtt, [512]]`),
    which their edited `parse_model` passes as the module's channels; yoloab takes the channels from the input and
    would read that number as the first hyper-parameter. A first argument of 64 or more is taken for such a count.

    Args:
        name: the registered name (`EMA`).
        first: the constructor's first parameter after c1 (`factor`).
    """
    return RowNote(
        f"yoloab builds {name} on the input's channels with {first} set to this number; public YOLO yaml files "
        f"put {name}'s channel count there, which yoloab does not take: write [] for the defaults, or [{first}]",
        first_at_least=64,
    )


def read_row_form(cls: type, channels: str) -> tuple[RowArg, ...] | None:
    """A module's yaml row form: its constructor's positional parameters after the ones Ultralytics fills in.

    A `conv`-rule row is `[c2, *rest]` (c1 comes from the input), a `same`- or `input`-rule row is `[*rest]`.

    Returns:
        The row's arguments in order, or None when the constructor takes `*args` or cannot be inspected (then
        nothing is checked).
    """
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    skip = 2 if channels == "conv" else 1
    if len(positional) < skip:
        return None
    head = (RowArg("c2", (int,)),) if channels == "conv" else ()
    return head + tuple(
        RowArg(
            p.name,
            _annotation_types(p.annotation),
            p.default is inspect.Parameter.empty,
            None if p.default is inspect.Parameter.empty else p.default,
        )
        for p in positional[skip:]
    )


def _annotation_types(annotation: object) -> tuple[type, ...]:
    """The plain types of an annotation such as `int | None` (a string under postponed evaluation); () for others."""
    if annotation is inspect.Parameter.empty:
        return ()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    tokens = [t.strip() for t in text.split("|")]
    return tuple(_PLAIN_TYPES[t] for t in tokens) if all(t in _PLAIN_TYPES for t in tokens) else ()


@dataclass(frozen=True)
class ModuleEntry:
    """A registered module and its metadata.

    Attributes:
        name: the name used in yaml rows and on the command line.
        cls: the nn.Module class.
        role: a key of `yoloab.roles.ROLES` (`downsample`, `block`, `attention`, `upsample`, `sppf`, `backbone`).
        channels: how the constructor takes channels, a key of `CHANNEL_RULES` (the role's rule).
        paper: citation of the source paper.
        article: the placement used by the source article (`None` for backbones); a tuple of placements selects
            the rows any of them selects (YOLOv10's SCDown: backbone P4/P5 and head P5).
        sizes: named configurations a backbone accepts; the first is the default.
        conv_args: how many of a replaced Conv row's args `[c2, k, s]` the module's yaml row keeps (ADown: 1).
        options: name suffixes a backbone variant may add after its size, each with the yaml args it appends after
            the size (RevCol: `{"rev": (True,)}`, so `RevCol-tiny-rev` builds `RevCol(c1, "tiny", True)`).
        recorded: attributes of the built module that every measurement records (RevCol: `save_memory`), so that a
            choice made by name or by a yaml argument shows in the results.
        hosts: for a block module, the rows whose inner blocks it can replace (`C2f`, `C3k2`, `C3`, `C2PSA`).
        origin: `file:line` where the module was registered.
        builtin: whether yoloab ships it (plugins are not builtin).
        row_form: the arguments of its yaml row, read from the constructor at registration (`[c2, k=3]` for
            SPDConv); None when the constructor takes `*args` (nothing is checked).
        row_notes: row forms that build here but mean something else in a well-known public version of the module;
            each gives one warning line when a yaml row uses it.
        check_size: for a backbone family whose sizes cannot all be listed (a timm model name), called with a size
            outside `sizes`; raises a `YoloabError` for one that cannot serve. None: only `sizes` are accepted.
            `--module all` leaves such a family out (`Registry.catalog_names`).
    """

    name: str
    cls: type[nn.Module]
    role: Role
    channels: ChannelRule
    paper: str
    article: Placement | tuple[Placement, ...] | None = None
    sizes: tuple[str, ...] = ()
    conv_args: int = 3
    options: dict[str, tuple] = field(default_factory=dict, compare=False)
    recorded: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    origin: str = ""
    builtin: bool = False
    extra: dict = field(default_factory=dict, compare=False)
    row_form: tuple[RowArg, ...] | None = None
    row_notes: tuple[RowNote, ...] = ()
    check_size: Callable[[str], None] | None = field(default=None, compare=False)

    @property
    def row_form_text(self) -> str:
        """The yaml row form as documented (`[c2, k=3]`, `[reduction=16, kernel_size=7]`, `[...]` when unknown)."""
        if self.row_form is None:
            return "[...]"
        return f"[{', '.join(map(str, self.row_form))}]"

    def row_mismatch(self, args: list) -> str | None:
        """Why a yaml row's arguments do not fit the module's row form (the count or a type), or None when they do.

        Args:
            args: the row's arguments with strings read as Ultralytics reads them (`nc`, Python literals).
        """
        form = self.row_form
        if form is None:
            return None
        if len(args) > len(form):
            return f"{len(args)} arguments where {self.name} takes at most {len(form)}"
        missing = [a.name for a in form[len(args) :] if a.required]
        if missing:
            return f"no {', '.join(missing)}, which {self.name} needs"
        for arg, value in zip(form, args, strict=False):
            if not arg.accepts(value):
                return f"{arg.name} is {value!r} where {arg.expected()} belongs"
        return None

    def row_note(self, args: list) -> str | None:
        """The warning of the first `row_notes` entry about a row with these arguments, or None."""
        return next((note.says for note in self.row_notes if note.applies(args)), None)

    @property
    def article_rules(self) -> tuple[Placement, ...]:
        """The article placement as a tuple of rules (empty when there is none)."""
        if self.article is None:
            return ()
        return self.article if isinstance(self.article, tuple) else (self.article,)

    @property
    def article_text(self) -> str:
        """The article placement as shown to users (`all`, `backbone:P4,P5 + head:P5`, `-`)."""
        return " + ".join(map(str, self.article_rules)) or "-"

    @property
    def default_size(self) -> str | None:
        """The size used when a backbone is named without one."""
        return self.sizes[0] if self.sizes else None

    def backbone_outputs(self, size: str | None = None) -> tuple[list[int], tuple[int, ...]]:
        """Channels and strides of a backbone's output maps, read from its constructor's contract.

        Backbones expose `out_channels` and `strides` after construction; building on the meta device allocates
        nothing and runs no forward.
        """
        return _backbone_outputs(self.cls, size or self.default_size)


class Registry:
    """A name -> `ModuleEntry` map with mmengine-style errors for duplicate and unknown names."""

    def __init__(self, kind: str, on_first_use: Callable[[], None] | None = None) -> None:
        """Create an empty registry.

        Args:
            kind: What it holds, for messages ('module').
            on_first_use: Called once before the first read or write (`yoloab.activation.load_catalog` registers the
                built-in catalog there, so that importing yoloab does not import torch).
        """
        self.kind = kind
        self.on_first_use = on_first_use
        self._store: dict[str, ModuleEntry] = {}
        self._aliases: dict[str, tuple[str, str]] = {}  # alias -> (registered name, why the alias exists)

    @property
    def _entries(self) -> dict[str, ModuleEntry]:
        hook, self.on_first_use = self.on_first_use, None
        if hook is not None:
            try:
                hook()
            except BaseException:
                self.on_first_use = hook  # try again next time rather than serve a half catalog silently
                raise
        return self._store

    def register(
        self,
        cls: type[nn.Module] | None = None,
        *,
        name: str | None = None,
        role: Role = "downsample",
        channels: ChannelRule | None = None,
        paper: str = "",
        article: Placement | tuple[Placement, ...] | None = None,
        sizes: tuple[str, ...] = (),
        conv_args: int = 3,
        options: dict[str, tuple] | None = None,
        recorded: tuple[str, ...] = (),
        hosts: tuple[str, ...] | None = None,
        row_notes: tuple[RowNote, ...] = (),
        check_size: Callable[[str], None] | None = None,
    ) -> Callable[[type[nn.Module]], type[nn.Module]] | type[nn.Module]:
        """Register a module class; usable as `@register(...)` or `register(Cls, ...)`.

        Args:
            cls: the class, when called directly rather than as a decorator.
            name: registry name (default: the class name).
            role: a key of `yoloab.roles.ROLES`.
            channels: constructor channel rule, a key of `CHANNEL_RULES`; default and only accepted value: the role's.
            paper: citation of the source paper.
            article: placement used by the source article.
            sizes: named configurations of a backbone, default first.
            conv_args: how many of a replaced Conv row's args `[c2, k, s]` the module's row keeps.
            options: name suffixes of a backbone, each with the yaml args it appends after the size.
            recorded: attributes of the built module to record with every measurement.
            hosts: for a block module, the host rows it fits (default `BLOCK_HOSTS`; add `C2PSA` for PSABlock).
            row_notes: row forms that a well-known public version of the module reads differently (a warning each).
            check_size: for a backbone family, validates a size outside `sizes` (see `ModuleEntry.check_size`).

        Returns:
            The class unchanged (decorator use) or the decorator.

        Raises:
            DuplicateModuleError: the name is already registered from another place.
            UnknownRoleError: the role is not one of `ROLES`, or the channel rule is not the role's.
        """
        spec = ROLES.get(role)
        if spec is None:
            raise UnknownRoleError(
                f"unknown role {role!r}{did_you_mean(str(role), ROLES)}; expected one of {', '.join(ROLES)}"
            )
        if channels is not None and channels != spec.channels:
            raise UnknownRoleError(
                f"role {role!r} takes channel rule {spec.channels!r} ({CHANNEL_RULES[spec.channels]}), not {channels!r}"
            )
        if hosts is not None and role != "block":
            raise UnknownRoleError(f"hosts= is for block modules; role {role!r} has no host rows")
        bad_hosts = sorted(set(hosts or ()) - set(BLOCK_HOSTS_ALL))
        if bad_hosts:
            raise UnknownRoleError(f"unknown block host(s) {bad_hosts}; expected some of {list(BLOCK_HOSTS_ALL)}")
        caller = sys._getframe(1)
        where = Path(caller.f_code.co_filename).resolve()
        origin = f"{where}:{caller.f_lineno}"

        def decorate(klass: type[nn.Module]) -> type[nn.Module]:
            from torch import nn  # the class's own module has imported torch already

            if not (isinstance(klass, type) and issubclass(klass, nn.Module)):
                raise TypeError(f"register_module expects an nn.Module subclass, got {klass!r}")
            key = name or klass.__name__
            entry = ModuleEntry(
                name=key,
                cls=klass,
                role=role,
                channels=spec.channels,
                paper=paper,
                article=article,
                sizes=tuple(sizes),
                conv_args=conv_args,
                options=dict(options or {}),
                recorded=tuple(recorded),
                hosts=tuple(hosts) if hosts is not None else (BLOCK_HOSTS if role == "block" else ()),
                origin=origin,
                builtin=where.is_relative_to(_PACKAGE_DIR),
                row_form=read_row_form(klass, spec.channels),
                row_notes=tuple(row_notes),
                check_size=check_size,
            )
            self.add(entry)
            return klass

        return decorate(cls) if cls is not None else decorate

    def add(self, entry: ModuleEntry) -> None:
        """Add an entry; re-adding from the same place (a module reload) replaces it silently."""
        old = self._entries.get(entry.name)
        if old is not None and old.origin != entry.origin:
            raise DuplicateModuleError(
                f"{self.kind} '{entry.name}' is registered twice: first at {old.origin}, again at {entry.origin}; "
                "rename one of them (register_module(name=...))"
            )
        self._entries[entry.name] = entry

    def alias(self, alias: str, target: str, note: str = "") -> None:
        """Make `alias` another name of the registered module `target` (no second class, no second entry).

        An alias resolves to its target everywhere (`--module`, yaml rows); `--module all` and the registry's
        iteration list each class once, under its registered name.

        Raises:
            DuplicateModuleError: `alias` is already a registered name.
            UnknownModuleError: `target` is not registered.
        """
        if alias in self._entries:
            raise DuplicateModuleError(f"{self.kind} alias '{alias}' is already registered as a {self.kind}")
        self.get(target)
        self._aliases[alias] = (target, note)

    def aliases(self) -> dict[str, tuple[str, str]]:
        """Every alias: name -> (registered name, note)."""
        self._entries  # noqa: B018 - loads the catalog, which registers the aliases
        return dict(self._aliases)

    def remove(self, name: str) -> None:
        """Forget a registration (tests and plugin reloads)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> ModuleEntry:
        """Return the entry for `name`, accepting a backbone size and option suffix (`RevCol-small`, `RevCol-tiny-rev`).

        Raises:
            UnknownModuleError: the name is not registered; the message lists the nearest names.
        """
        base, size, option = split_name(name)
        entries = self._entries  # first: loading the catalog registers the aliases too
        if base in self._aliases:
            base = self._aliases[base][0]
            name = "-".join(x for x in (base, size, option) if x)
        entry = entries.get(name) or entries.get(base)
        if entry is None:
            raise UnknownModuleError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, [*self._entries, *self._aliases])}; "
                f"registered: {', '.join(sorted(self._entries))}"
            )
        if size and entry.name == base and size not in entry.sizes and entry.check_size is not None:
            entry.check_size(size)  # an open family (timm): the size is validated by the family itself
        elif size and entry.name == base and size not in entry.sizes:
            raise UnknownModuleError(
                f"{entry.name} has no size '{size}'{did_you_mean(size, entry.sizes)}; sizes: {', '.join(entry.sizes)}"
            )
        if option and entry.name == base and option not in entry.options:
            known = ", ".join(entry.options) or "none"
            raise UnknownModuleError(
                f"{entry.name} has no option '{option}'{did_you_mean(option, entry.options)}; options: {known}"
            )
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[ModuleEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: (not e.builtin, e.name.lower())))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def catalog_names(self) -> list[str]:
        """The names `--module all` stands for: every registered module but the open backbone families (timm)."""
        return sorted(name for name, entry in self._entries.items() if entry.check_size is None)


@functools.cache
def _backbone_outputs(cls: type[nn.Module], size: str | None) -> tuple[list[int], tuple[int, ...]]:
    from .meta_device import meta_device

    with meta_device():
        probe = cls(3, size) if size else cls(3)
    return list(probe.out_channels), tuple(probe.strides)


def split_size(name: str) -> tuple[str, str | None]:
    """Split `RevCol-small` into (`RevCol`, `small`); names without a dash have no size."""
    base, sep, size = name.partition("-")
    return (base, size) if sep else (name, None)


def split_name(name: str) -> tuple[str, str | None, str | None]:
    """Split `RevCol-tiny-rev` into (`RevCol`, `tiny`, `rev`): module, size and option, the last two optional."""
    base, size = split_size(name)
    if size is None:
        return base, None, None
    size, sep, option = size.partition("-")
    return base, size, option if sep else None


MODULES = Registry("module")
register_module = MODULES.register


BUILD_ENV: set[str] = set()
"""Environment variables that change how a registered module builds (AKConv's `YOLOAB_AKCONV`), added by the module:
the set ones are part of a profile record's key, since the yaml alone no longer says what was measured."""


def build_environment() -> dict[str, str]:
    """The `BUILD_ENV` variables set in this process, by name."""
    return {name: os.environ[name] for name in sorted(BUILD_ENV) if os.environ.get(name)}


def recorded_attributes(model: nn.Module) -> dict[str, object]:
    """The `recorded` attributes of every registered module inside a built model (`{"save_memory": True}`).

    Where one attribute differs between instances, all their values are listed in model order.
    """
    by_class = {e.cls: e.recorded for e in MODULES if e.recorded}
    found: dict[str, list] = {}
    for m in model.modules():
        for attr in by_class.get(type(m), ()):
            found.setdefault(attr, []).append(getattr(m, attr, None))
    return {k: v[0] if len(set(map(repr, v))) == 1 else v for k, v in found.items()}
