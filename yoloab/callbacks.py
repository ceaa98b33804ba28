"""The Ultralytics callbacks of one training run: progress, resumable checkpoints, stop requests, resume state.

The resume state is what Ultralytics' `last.pt` leaves out (full-precision weights, generators; see
`yoloab._ultralytics.rng_state`).
That state goes to `weights/rng.pt` after each saved epoch, before the atomic copy of `last.pt`, and is put back at
the start of the first resumed epoch when it belongs to the checkpoint's epoch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._ultralytics import read_state, restore_rng_state, rng_state
from .errors import SweepInterrupted
from .variants import copy_atomic

if TYPE_CHECKING:  # `yoloab.training` calls into this module: its types only, no import at run time
    from .training import RunHooks, RunSpec


def _save_rng(trainer: Any, path: Path) -> None:
    import torch

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(rng_state(trainer), tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_callbacks(model: Any, spec: RunSpec, hooks: RunHooks, restored: dict[str, Any]) -> None:
    """Progress, the atomic checkpoint copy, the stop request, and the state a resume needs.

    `restored` receives `parts`: what the resumed run got back (see `restore_rng_state`), or `[]` when the saved
    states were missing or of another epoch.
    """
    rng_path = spec.run_dir / "weights" / "rng.pt"
    done = [0]  # batches done in the current epoch

    def on_train_epoch_start(trainer: Any) -> None:
        done[0] = 0
        if restored.get("from") and "parts" not in restored and trainer.epoch == trainer.start_epoch:
            try:  # plain data only (weights_only): a file that names anything else restores nothing
                state = read_state(rng_path)
            except Exception:
                state = None
            ok = isinstance(state, dict) and state.get("epoch") == trainer.start_epoch - 1
            restored["parts"] = restore_rng_state(trainer, state) if ok else []
            if ok and state.get("workers"):
                restored["parts"].append("not dataloader workers' own generators")

    def on_train_batch_end(trainer: Any) -> None:
        if hooks.batch is not None:
            done[0] += 1
            hooks.batch(trainer.epoch + 1, trainer.epochs, done[0], len(trainer.train_loader))

    def on_model_save(trainer: Any) -> None:
        last = Path(trainer.last)
        if last.is_file():
            _save_rng(trainer, rng_path)  # before the safe copy: a resume finds the states of its checkpoint's epoch
            copy_atomic(last, last.with_name("last.safe.pt"))
        if hooks.stop_requested is not None and hooks.stop_requested() and trainer.epoch + 1 < trainer.epochs:
            raise SweepInterrupted(f"{spec.label}: stopped after epoch {trainer.epoch + 1} of {trainer.epochs}")

    def on_fit_epoch_end(trainer: Any) -> None:
        if hooks.metrics is not None and trainer.metrics:
            losses = trainer.label_loss_items(trainer.tloss) if isinstance(trainer.tloss, dict) else {}
            hooks.metrics({**losses, **trainer.metrics})
        if hooks.epoch is not None and trainer.epoch < trainer.epochs:  # final validation repeats the last epoch
            hooks.epoch(trainer.epoch + 1, trainer.epochs)

    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    model.add_callback("on_model_save", on_model_save)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
