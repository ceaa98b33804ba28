"""The `yoloab` command line: a thin Typer shell over the library (one file per command group)."""
