"""`yoloab list`: the registered modules and the base models of the installed Ultralytics.

`yoloab list --backbones PATTERN`: the timm models that can be a YOLO backbone (`--module timm-<model>`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .options import Plugins, load_plugins, make_console


def list_catalog(
    backbones: Annotated[
        str | None,
        typer.Option(
            "--backbones",
            metavar="PATTERN",
            help="List the timm models matching PATTERN (timm.list_models, e.g. 'fasternet*') that can be a backbone "
            "(--module timm-<model>): params, channels and strides of the three maps.",
            show_default=False,
        ),
    ] = None,
    plugin: Plugins = None,
) -> None:
    """List the roles, the registered modules (role, paper, article placement) and the available base models."""
    from .._ultralytics import import_ultralytics
    from ..models import base_models
    from ..placement import article_text
    from ..registry import MODULES
    from ..roles import ROLES

    import_ultralytics()  # a fresh settings folder's notice goes to stderr, not into the tables
    load_plugins(plugin)
    if backbones is not None:
        list_timm_backbones(backbones)
        return
    console = make_console()
    roles = Table(title="Roles (register_module(role=...))", title_justify="left")
    for col in ("role", "replaces", "placements", "a plugin module provides"):
        roles.add_column(col, overflow="fold")
    for spec in ROLES.values():
        placements = ", ".join(spec.selectors) + (", row indices" if spec.selectors else "")
        roles.add_row(spec.name, spec.replaces, placements or "backbone (the whole backbone)", spec.contract)
    console.print(roles)
    table = Table(title="Registered modules", title_justify="left")
    for col in ("module", "role", "article placement", "sizes", "paper"):
        table.add_column(col, overflow="fold")
    for e in MODULES:
        placement = article_text(e)
        paper = e.paper if e.builtin else f"{e.paper} [plugin {e.origin}]"
        sizes = ", ".join(e.sizes) + "".join(f" (+ -{o}: {e.name}-{e.default_size}-{o})" for o in e.options)
        if e.check_size is not None:
            sizes += " (any timm model that can serve: yoloab list --backbones PATTERN)"
        table.add_row(e.name, e.role, placement, sizes or "-", paper)
    for alias, (target, note) in MODULES.aliases().items():
        entry = MODULES.get(target)
        table.add_row(alias, entry.role, entry.article_text, "-", f"alias of {target}: {note}")
    console.print(table)
    models = Table(title="Base models (installed Ultralytics)", title_justify="left")
    models.add_column("family")
    models.add_column("models", overflow="fold")
    by_family: dict[str, list[str]] = {}
    for m in base_models().values():
        by_family.setdefault(m.family, []).append(m.name)
    for family, names in by_family.items():
        models.add_row(family, " ".join(names))
    console.print(models)


def list_timm_backbones(pattern: str) -> None:
    """One line per timm model matching `pattern` that can be a YOLO backbone: params, channels and strides.

    Raises:
        UnknownModuleError: no timm model matches the pattern.
    """
    import timm

    from ..errors import UnknownModuleError, did_you_mean
    from ..modules.timm_backbone import ARTICLE_MODELS, list_backbones

    names = timm.list_models(pattern)
    if not names:
        raise UnknownModuleError(
            f"no timm model matches '{pattern}'{did_you_mean(pattern.strip('*'), timm.list_models())}; patterns are "
            f"timm.list_models wildcards, e.g. 'fasternet*', '*mobilenetv4*' (article: {', '.join(ARTICLE_MODELS)})"
        )
    found = list_backbones(pattern)
    console = make_console()
    table = Table(title=f"timm backbones matching '{pattern}' (--module timm-<model>)", title_justify="left")
    for col in ("module", "params", "channels P3,P4,P5", "strides", "feature_info taps"):
        table.add_column(col, overflow="fold")
    for probe in found:
        table.add_row(
            f"timm-{probe.name}",
            f"{probe.params:,}",
            ", ".join(map(str, probe.channels)),
            ", ".join(map(str, probe.strides)),
            ", ".join(map(str, probe.out_indices)),
        )
    console.print(table)
    console.print(
        f"{len(found)} of {len(names)} timm models matching '{pattern}' can serve (built on the meta device, run at "
        "256x256); the others lack a stride-8, 16 or 32 map or do not build with features_only=True",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("list")(list_catalog)
