"""Training one run outside the driver process: in a subprocess pinned to one device, or in a Ray task.

A worker loads the sweep's plugin files (so their modules are registered), trains the run with `train_run` and
hands the record back; it never writes the results store. Progress (the last finished epoch) goes to a small JSON
file the driver polls. `main(SPEC OUT [PROGRESS])` is the subprocess entry (started by `yoloab.executors` through
`python -c`, with the working directory off `sys.path`): SPEC is a pickled `RunSpec`, OUT receives the record as
JSON; exit code 130 means the run was stopped after saving (no record).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

from .plugins import load_plugin
from .training import RunHooks, RunSpec, SweepInterrupted, train_run
from .variants import write_atomic


def run_in_worker(spec: RunSpec, progress: Path | None = None, stop: Any = None) -> dict[str, Any]:
    """Load the spec's plugins and train it; returns the record.

    Args:
        spec: the run.
        progress: file to write `{"epoch": e, "epochs": n}` to after each epoch.
        stop: callable polled after each saved epoch; True stops the run (`SweepInterrupted`).
    """
    for path in spec.plugins:
        load_plugin(path)

    def on_epoch(epoch: int, epochs: int) -> None:
        if progress is not None:
            write_atomic(progress, json.dumps({"epoch": epoch, "epochs": epochs}))

    return train_run(spec, RunHooks(epoch=on_epoch, stop_requested=stop))


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry point."""
    from .sweep import graceful_interrupt

    args = sys.argv[1:] if argv is None else argv
    spec = pickle.loads(Path(args[0]).read_bytes())
    out = Path(args[1])
    progress = Path(args[2]) if len(args) > 2 else None
    with graceful_interrupt(lambda: None) as stop:
        try:
            record = run_in_worker(spec, progress, stop)
        except (SweepInterrupted, KeyboardInterrupt):
            return 130
    write_atomic(out, json.dumps(record, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
