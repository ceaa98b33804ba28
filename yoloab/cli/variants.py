"""`yoloab variants`: write variant yaml files and build each one, printing its parameter count."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..presets import PRESETS
from .options import Models, Modules, Nc, PlacementOpt, Plugins, Yamls, load_plugins, make_console


def variants(
    yamls: Yamls = None,
    model: Models = None,
    module: Modules = None,
    placement: PlacementOpt = "article",
    preset: Annotated[
        str | None, typer.Option("--preset", help=f"A named set of variants: {', '.join(PRESETS)}.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the yaml files (none: do not write).")
    ] = None,
    nc: Nc = None,
    build_models: Annotated[
        bool, typer.Option("--build/--no-build", help="Build each variant and count params.")
    ] = True,
    plugin: Plugins = None,
) -> None:
    """Generate variants of base models (one per module and placement), write their yaml, build and count them.

    No --module: the baselines only; `--module all`: every registered module; YAML files are built as given.
    """
    from ..results import check_out_dir, write_files
    from ..variants import build, count_params, select_request, to_yaml, with_nc

    if out is not None:
        check_out_dir(out)  # before plugins load and variants are made
    load_plugins(plugin)
    if preset is not None:
        chosen = PRESETS.get(preset)
        if chosen is None:
            raise typer.BadParameter(f"unknown preset '{preset}'; expected one of {', '.join(PRESETS)}")
        chosen_variants = chosen()
    else:
        chosen_variants = select_request(model, module, placement, [str(y) for y in yamls or []])
    chosen_variants = [with_nc(v, nc) if v.path is None else v for v in chosen_variants]  # written files carry nc
    table = Table(title="Variants", title_justify="left")
    for col, justify in (("variant", "left"), ("rows changed", "left"), ("params", "right"), ("yaml", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    written = [out / f"{v.name}.yaml" if out and not v.is_baseline and v.path is None else v.path
               for v in chosen_variants]  # fmt: skip
    generated = {p.name: to_yaml(v) for v, p in zip(chosen_variants, written, strict=True) if p and p != v.path}
    if out and generated:  # all or none: a full disk or a read-only folder leaves no partial set of yaml files
        write_files(out, generated, "the variant yaml files")
    for v, path in zip(chosen_variants, written, strict=True):
        params = f"{count_params(build(v, nc=nc)):,}" if build_models else "-"
        rows = "backbone" if v.is_backbone_swap else ",".join(map(str, v.rows)) or "-"
        if v.after is not None:
            rows = f"inserted {rows} (after {','.join(map(str, v.after))})"
        table.add_row(v.name, rows, params, str(path or "-"))
    make_console().print(table)


def register(app: typer.Typer) -> None:
    """Attach the command to the app."""
    app.command("variants")(variants)
