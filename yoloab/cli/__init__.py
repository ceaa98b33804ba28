"""The `yoloab` command line: a thin Typer shell over the library (one file per command group)."""

import sys

from ..errors import quiet_interrupt

sys.excepthook = quiet_interrupt  # the command line is the program: a Ctrl-C while it starts is one line
