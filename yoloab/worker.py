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
import time
from pathlib import Path
from typing import Any

from .errors import SweepInterrupted
from .plugins import load_plugin
from .training import RunHooks, RunSpec, train_run
from .variants import write_atomic

BATCH_WRITE_S = 0.5


def run_in_worker(spec: RunSpec, progress: Path | None = None, stop: Any = None) -> dict[str, Any]:
    """Load the spec's plugins and train it; returns the record.

    Args:
        spec: the run.
        progress: file to write `{"epoch": e, "epochs": n, "batch": [e, n, b, nb], "metrics": {...}}` to after each
            epoch and every `BATCH_WRITE_S` seconds of batches.
        stop: callable polled after each saved epoch; True stops the run (`SweepInterrupted`).
    """
    for path in spec.plugins:
        load_plugin(path)

    state: dict[str, Any] = {"epoch": 0, "epochs": spec.settings.epochs}
    last = [0.0]

    def write(force: bool) -> None:
        # batches come many a second: a few writes a second are enough for the driver's display
        if progress is not None and (force or time.monotonic() - last[0] > BATCH_WRITE_S):
            last[0] = time.monotonic()
            write_atomic(progress, json.dumps(state))

    def on_epoch(epoch: int, epochs: int) -> None:
        state.update(epoch=epoch, epochs=epochs)
        write(True)

    def on_batch(epoch: int, epochs: int, batch: int, batches: int) -> None:
        state.update(batch=[epoch, epochs, batch, batches])
        write(batch == batches)

    def on_metrics(values: dict[str, float]) -> None:
        state["metrics"] = values

    # a worker's stdout already is the run's log file (see `yoloab.executors`)
    hooks = RunHooks(epoch=on_epoch, stop_requested=stop, batch=on_batch, metrics=on_metrics)
    return train_run(spec, hooks)


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
