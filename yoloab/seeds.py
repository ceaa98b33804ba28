"""Seeds of a comparison: `yoloab report --require-seeds N` and the `yoloab sweep` command that fills a gap.

A report compares rows: one per variant and training settings (`yoloab.report.build.GROUP_KEYS`), each the mean over
its finished seeds. `missing_runs` lists, for every row of every dataset table (baselines included) with fewer than
N finished seeds, the runs that would complete it, and for each the exact `yoloab sweep` command that trains it: the
same model definition, dataset, settings and seed, hence the same run key (`yoloab.training.run_key`).

Which seeds: a failed seed of the row first (a sweep retries it), then the seeds other rows of the table finished (so
the rows end up paired by seed), then 0, 1, 2, ... as `sweep --seeds N` trains them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import MissingSeedsError, YoloabError

BUILTIN_IMAGES = 512  # `sweep --builtin-images` default
_BUILTIN_ID = re.compile(r"^builtin-shapes-v\d+-(\d+)x(\d+)-")


@dataclass(frozen=True)
class MissingRun:
    """A run a comparison lacks.

    Attributes:
        dataset: the table (dataset name).
        variant: the row's label (the variant, plus the settings that tell its rows apart).
        seed: the seed to train.
        command: the `yoloab sweep` command that trains exactly this run.
        failed: the error of a stored failed run of this seed, else None.
    """

    dataset: str
    variant: str
    seed: int
    command: str
    failed: str | None = None

    def line(self) -> str:
        """`variant seed N (failed: ...): command`, one line."""
        why = f" (failed: {' '.join(self.failed.split())})" if self.failed else ""
        return f"{self.variant} seed {self.seed}{why}: {self.command}"


def _seed(record: dict[str, Any]) -> int | None:
    seed = record.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _pick(needed: int, have: set[int], preferred: Iterable[int]) -> list[int]:
    out: list[int] = []
    for s in preferred:
        if len(out) == needed:
            break
        if s not in have and s not in out:
            out.append(s)
    n = 0
    while len(out) < needed:
        if n not in have and n not in out:
            out.append(n)
        n += 1
    return out


def missing_runs(report: Any, n: int, results_dir: str | Path) -> list[MissingRun]:
    """Every run that keeps a compared row of `report` below `n` finished seeds.

    Args:
        report: a `yoloab.report.Report`; only its dataset tables count (profile records have no seeds).
        n: finished seeds each row needs.
        results_dir: the results directory, as the commands should name it.
    """
    from .report.metrics import DATASET

    out: list[MissingRun] = []
    for table in report.tables:
        if table.kind != DATASET:
            continue
        finished = {s for row in table.rows for r in row.runs if (s := _seed(r)) is not None}
        for row in table.rows:
            have = {s for r in row.runs if (s := _seed(r)) is not None}
            if len(have) >= n:
                continue
            failed = {s: r for r in row.failed if (s := _seed(r)) is not None and s not in have}
            seeds = _pick(n - len(have), have, [*sorted(failed), *sorted(finished)])
            template = (row.runs or row.failed)[0]
            for seed in seeds:
                bad = failed.get(seed)
                error = (bad.get("error") or f"status {bad.get('status')}") if bad else None
                out.append(MissingRun(table.name, row.label, seed, sweep_command(template, seed, results_dir), error))
    return out


def require_seeds(report: Any, n: int, results_dir: str | Path) -> None:
    """Refuse a report whose compared rows do not all have `n` finished seeds.

    Raises:
        MissingSeedsError: naming every missing run, one per line, with the command that trains it.
    """
    missing = missing_runs(report, n, results_dir)
    if not missing:
        return
    tables = sorted({m.dataset for m in missing})
    head = (
        f"--require-seeds {n}: {len(missing)} run(s) missing on dataset {', '.join(tables)}; nothing written. "
        "Each line names one (variant, seed) and the command that trains it:"
    )
    raise MissingSeedsError("\n".join([head, *(f"  {m.line()}" for m in missing)]), missing)


def sweep_command(record: dict[str, Any], seed: int, results_dir: str | Path) -> str:
    """The `yoloab sweep` command that trains `record`'s model, dataset and settings with another seed.

    The run key hashes the model definition, dataset, settings and seed, so the command trains the very run a report
    is missing, and a sweep re-run with it skips whatever is already stored.
    """
    args = ["yoloab", "sweep", *_model_args(record), "--dataset", _dataset_arg(record)]
    images = _builtin_images(record)
    if images is not None and images != BUILTIN_IMAGES:
        args += ["--builtin-images", str(images)]
    for key in ("epochs", "imgsz", "batch"):
        if record.get(key) is not None:
            args += [f"--{key}", str(record[key])]
    for key, value in sorted((record.get("train_args") or {}).items()):
        args += ["--train", f"{key}={_scalar(value)}"]
    if isinstance(record.get("pretrained"), dict) and record["pretrained"].get("path"):
        args += ["--pretrained", str(record["pretrained"]["path"])]
    backbone = (record.get("pretrained") or {}).get("backbone_weights")
    if isinstance(backbone, dict) and backbone.get("path"):
        args += ["--backbone-weights", str(backbone["path"])]
    for plugin in record.get("plugins") or []:
        args += ["--plugin", str(plugin)]
    if record.get("device") not in (None, "auto"):
        args += ["--device", str(record["device"])]
    if record.get("workers") is not None:
        args += ["--workers", str(record["workers"])]
    if record.get("sweep") not in (None, "sweep"):
        args += ["--name", str(record["sweep"])]
    args += ["--seed", str(seed), "--results", str(results_dir)]
    return shlex.join(args)


def _scalar(value: Any) -> str:
    """A trainer argument as `--train KEY=VALUE` reads it back (a yaml scalar)."""
    if value is None:
        return ""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
    return text.removesuffix("...").strip()


def _builtin_images(record: dict[str, Any]) -> int | None:
    if record.get("dataset") != "builtin":
        return None
    match = _BUILTIN_ID.match(str(record.get("dataset_id") or ""))
    return int(match.group(1)) if match else None


def _dataset_arg(record: dict[str, Any]) -> str:
    """`builtin`, the data yaml the run trained on, or (records older than `data_yaml`) the one its run dir names."""
    if record.get("dataset") == "builtin" and str(record.get("dataset_id") or "").startswith("builtin-"):
        return "builtin"
    if record.get("data_yaml"):
        return str(record["data_yaml"])
    args = Path(str(record.get("run_dir") or "")) / "args.yaml"
    try:
        data = (yaml.safe_load(args.read_text(encoding="utf-8")) or {}).get("data") if record.get("run_dir") else None
    except (OSError, yaml.YAMLError, AttributeError):
        data = None
    return str(data) if data else f"<data yaml of {record.get('dataset')}>"


def _model_args(record: dict[str, Any]) -> list[str]:
    """`--model B [--module M --placement P]` where that builds the recorded model definition, else its stored yaml."""
    base, module, placement = record.get("base"), record.get("module"), record.get("placement")
    if base and _regenerates(record):
        args = ["--model", str(base)]
        if module is not None:
            args += ["--module", str(module)]
            if placement not in (None, "article"):
                args += ["--placement", str(placement)]
        return args
    return [str(record.get("yaml"))]


def _regenerates(record: dict[str, Any]) -> bool:
    """Whether the catalog builds this record's model definition today (same hash): not after a catalog change."""
    try:
        from .hashing import model_hash
        from .models import get_base_model
        from .variants import baseline, make_variant

        base = get_base_model(str(record["base"]))
        module = record.get("module")
        variant = baseline(base) if module is None else make_variant(base, str(module), str(record.get("placement")))
        return variant.name == record.get("variant") and model_hash(variant) == record.get("yaml_sha256")
    except (YoloabError, KeyError, TypeError, ValueError):  # a plugin's module, a base model no longer shipped
        return False
