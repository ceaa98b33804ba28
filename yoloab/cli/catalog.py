"""`yoloab list`: the registered modules and the base models of the installed Ultralytics."""

from __future__ import annotations

import typer
from rich.table import Table

from .options import Plugins, load_plugins, make_console


def list_catalog(plugin: Plugins = None) -> None:
    """List the roles, the registered modules (role, paper, article placement) and the available base models."""
    from ..models import base_models
    from ..placement import article_text
    from ..registry import MODULES
    from ..roles import ROLES

    load_plugins(plugin)
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


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("list")(list_catalog)
