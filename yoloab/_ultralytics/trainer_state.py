"""What a run's log and a resumed run need from Ultralytics' trainer (part of `yoloab._ultralytics`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import quiet_logs
from .loss import box_loss_state, load_box_loss_state


class _RunLog:
    """A text stream writing to a run's open log file, and once it is closed to the stream that was current before.

    Whatever captures `sys.stdout` while a run trains (a handler created by a lazy import, a progress bar) may outlive
    the run; its later lines then go where they would have gone without the log, instead of failing on a closed file.
    """

    def __init__(self, fh: Any, fallback: Any) -> None:
        self.fh, self.fallback = fh, fallback

    def _target(self) -> Any:
        return self.fallback if self.fh.closed else self.fh

    def write(self, text: str) -> int:  # noqa: D102
        return self._target().write(text)

    def flush(self) -> None:  # noqa: D102
        self._target().flush()

    def isatty(self) -> bool:  # noqa: D102
        return False

    def fileno(self) -> int:  # noqa: D102
        return self._target().fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


@contextmanager
def output_to(log: Path | None) -> Iterator[None]:
    """Send Ultralytics' log lines, progress bars and warnings to the file `log` (appended) while active.

    Its logger's handlers are re-pointed at the file, and `sys.stdout`/`sys.stderr` too, because its `TQDM` bars write
    to the `sys.stdout` of their creation with carriage returns and ANSI codes that a live display cannot hold.
    With `log=None` its lines go to the current `sys.stdout` instead (as `quiet_logs(False)`).
    """
    import contextlib
    import sys

    if log is None:
        with quiet_logs(False):
            yield
        return
    from ultralytics.utils import LOGGER

    log.parent.mkdir(parents=True, exist_ok=True)
    streams = [(h, h.stream) for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    with open(log, "a", encoding="utf-8", opener=_no_follow) as fh:
        out, err = _RunLog(fh, sys.stdout), _RunLog(fh, sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                for handler, _ in streams:
                    _set_stream(handler, out)
                yield
            finally:
                for handler, stream in streams:
                    _set_stream(handler, stream)


def _no_follow(path: str, flags: int) -> int:
    """An `open` opener that refuses a symlink (ELOOP) instead of appending to what it points at.

    The sweep checks a run's log path before training (`yoloab.safepaths`); this holds at the open itself too.
    """
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)


def _set_stream(handler: logging.StreamHandler, stream: Any) -> None:
    """`handler.setStream` without its flush of the old stream, which may be closed (a finished test's capture)."""
    handler.acquire()
    try:
        handler.stream = stream
    finally:
        handler.release()


def rng_state(trainer: Any) -> dict[str, Any]:
    """What Ultralytics' `last.pt` leaves out and a resumed run needs to continue as the uninterrupted one would.

    Ultralytics' `last.pt` holds the EMA in half precision, the optimizer and the epoch (its scheduler is rebuilt from
    the epoch); a resume restarts the trained weights from that half-precision EMA and re-seeds every generator, so
    it would redo the first epoch's shuffle and augmentations. This is the state at the end of `trainer.epoch`: the
    trained model's and the EMA's weights in full precision, Python's, NumPy's and torch's generators (CUDA too),
    the train sampler's generator, and a catalog box loss's running state (`yoloab._ultralytics.loss`).
    """
    import random

    import numpy as np
    import torch

    sampler = getattr(trainer.train_loader, "sampler", None)
    generator = getattr(sampler, "generator", None)
    from ultralytics.utils.torch_utils import unwrap_model

    def weights(model: Any) -> dict[str, Any]:
        return {k: v.detach().to("cpu", copy=True) for k, v in unwrap_model(model).state_dict().items()}

    return {
        "epoch": int(trainer.epoch),
        "model": weights(trainer.model),
        "ema": weights(trainer.ema.ema) if trainer.ema is not None else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "sampler": generator.get_state() if isinstance(generator, torch.Generator) else None,
        "workers": int(getattr(trainer.train_loader, "num_workers", 0)),
        "loss": box_loss_state(unwrap_model(trainer.model)),  # a catalog loss's running mean (Wise-IoU), or None
    }


def restore_rng_state(trainer: Any, state: dict[str, Any]) -> list[str]:
    """Put back what `rng_state` saved, at the start of the first resumed epoch; returns what was restored.

    The sampler gets its own generator: the resumed loader's new iterator draws its worker base seed from the loader's
    generator (shared with the sampler), which the uninterrupted run did once, before the saved state.
    """
    import random

    import numpy as np
    import torch
    from ultralytics.utils.torch_utils import unwrap_model

    done = []
    if state.get("model") is not None:
        unwrap_model(trainer.model).load_state_dict(state["model"])  # in place: the optimizer keeps its parameters
        done.append("model")
    if state.get("ema") is not None and trainer.ema is not None:
        trainer.ema.ema.load_state_dict(state["ema"])
        done.append("ema")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    done += ["python", "numpy", "torch"]
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
        done.append("cuda")
    if state.get("loss") and load_box_loss_state(unwrap_model(trainer.model), state["loss"]):
        done.append("loss")
    sampler = getattr(trainer.train_loader, "sampler", None)
    if state.get("sampler") is not None and isinstance(getattr(sampler, "generator", None), torch.Generator):
        generator = torch.Generator()
        generator.set_state(state["sampler"])
        if not getattr(sampler, "replacement", True) and not state.get("workers"):
            # torch's RandomSampler draws one more permutation (its empty remainder) when an epoch's last index is
            # taken, which an in-process loader does lazily, at the next epoch's first batch: after the saved state
            torch.randperm(len(sampler.data_source), generator=generator)
        sampler.generator = generator
        done.append("sampler")
    return done
