"""Deployment runtimes: export through Ultralytics' exporter (cached), parity against PyTorch, runtime sessions.

For every variant and runtime other than `torch`:

- the variant is exported with Ultralytics' own `Exporter` into `<results>/exports/`, keyed by a hash over the model
  definition, its weights, the export settings and the library versions; a finished export (ok or failed) is stored
  with an `export.json` (with each artifact file's size and SHA-256) and found again by the next run instead of
  exporting again; a cached artifact that no longer matches them (cut short, changed) or, made before they were
  kept, no longer loads, is moved to `<results>/damaged/` and exported again; the temporary folder of an export whose
  process is gone (killed) is removed by the next export; a full disk or read-only folder is a `StorageError`, never
  an export failure of the variant;
- the export status is `ok` or `failed: <one line>` (the unsupported operator, or the first line of the error, and
  the row of the model it came from where the exporter says);
- parity is max |exported - PyTorch| / max |PyTorch| over the raw head output (boxes and class scores before NMS) on
  one fixed random input, against the fused fp32 PyTorch model; above `PARITY_TOLERANCE` the row is flagged;
- sessions are opened with the thread count PyTorch uses, ONNX Runtime's thread spinning off (left on, its idle
  threads spin and slow the interleaved PyTorch timings ~2x), OpenVINO at fp32 inference precision unless `--half`
  (it otherwise picks bf16 on CPUs that have it).

Nothing is installed at run time: `check_runtimes` checks the packages before any work and Ultralytics'
requirement checks are switched off during the export (`yoloab._ultralytics.export_model`).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._ultralytics import export_model, tensorrt_runner, ultralytics_version
from .errors import MissingExtraError, StorageError, UnknownRuntimeError, did_you_mean, os_error_in_chain, os_error_text
from .hashing import file_sha256 as _sha256
from .results import quarantine
from .safepaths import inside

RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")
FORMATS = {"onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "engine"}
EXTRA = "pip install 'yoloab[deploy]'"
# what each runtime imports, export included: onnxslim is the exporter's simplifier (Ultralytics' default)
PACKAGES = {"onnxruntime": ("onnx", "onnxslim", "onnxruntime"), "openvino": ("openvino",), "tensorrt": ("tensorrt",)}
PARITY_TOLERANCE = {"float32": 1e-3, "float16": 1e-2}
CACHE_FORMAT = 1  # bump when what an export key hashes, or how an artifact is made, changes

Runner = Callable[[np.ndarray], np.ndarray]


def _importable(package: str) -> bool:
    # imported, not just found: a package that is present but broken must fail here, not halfway through a profile
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def check_runtimes(names: Sequence[str], device: torch.device) -> tuple[list[str], dict[str, str]]:
    """Validate runtime names and check that their packages are installed, before any work.

    Returns:
        The runtimes to measure (in order, without repeats) and the skipped ones with the reason (TensorRT without a
        CUDA device or without the `tensorrt` package).

    Raises:
        UnknownRuntimeError: a name that is not a runtime (with the nearest ones).
        MissingExtraError: ONNX Runtime or OpenVINO requested but not installed (names the extra).
    """
    chosen, skipped = [], {}
    for name in names:
        if name not in RUNTIMES:
            raise UnknownRuntimeError(
                f"unknown runtime '{name}'; expected one of {', '.join(RUNTIMES)}{did_you_mean(name, RUNTIMES)}"
            )
        if name in chosen or name in skipped:
            continue
        missing = [p for p in PACKAGES.get(name, ()) if not _importable(p)]
        if name == "tensorrt":
            if device.type != "cuda":
                skipped[name] = f"skipped: TensorRT needs a CUDA device; this run is on {device.type}"
            elif missing:
                skipped[name] = "skipped: the tensorrt package is not installed (NVIDIA's pip install tensorrt)"
            else:
                chosen.append(name)
            continue
        if missing:
            raise MissingExtraError(
                f"--runtime {name} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                f"installed; install the deploy extra: {EXTRA}"
            )
        chosen.append(name)
    return chosen, skipped


# --------------------------------------------------------------------------------------------------------------------
# export and its cache


@dataclass
class Export:
    """One exported artifact (or the failure to make it).

    Attributes:
        status: `ok` or `failed: <one line>`.
        path: the artifact (file or folder), None when failed.
        size_mb: its size on disk (MB, 1e6 bytes).
        seconds: how long the export took when it was made.
        cached: found in the cache by this run.
        files: each artifact file (relative to the export's folder) -> [bytes, SHA-256]; None for a failed export
            and for exports cached before this was kept.
    """

    status: str
    path: str | None = None
    size_mb: float | None = None
    seconds: float | None = None
    cached: bool = False
    files: dict[str, list[Any]] | None = None


def model_digest(model: nn.Module) -> str:
    """A hash over the model definition (its yaml dict) and every parameter and buffer value."""
    h = hashlib.sha256(json.dumps(getattr(model, "yaml", {}), sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def export_key(digest: str, runtime: str, imgsz: int, batch: int, half: bool, device: torch.device) -> str:
    """The cache key of an export: model digest, settings and the versions that decide the artifact."""
    payload = [CACHE_FORMAT, digest, FORMATS[runtime], imgsz, batch, half, device.type, ultralytics_version()]
    payload.append(torch.__version__)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


# torch.onnx: "Exporting the operator 'aten::x' ..."; OpenVINO: "No conversion rule found for operations: aten::x"
_OP = re.compile(r"operator '([\w:.]+)'|operations: ([\w:., ]+)")
_ROW = re.compile(r"::model\.(\d+)")


def failure_reason(err: BaseException) -> str:
    """One line for an export error: the unsupported operator or the error's first line, and the row it came from.

    torch.onnx appends the whole traced graph to some messages (`[Caused by the value ...]`); the row index is read
    from the scope names in it before it is cut off.
    """
    text = str(err).strip()
    first = (text.splitlines() or [""])[0].split(" [Caused by")[0].strip()
    op = _OP.search(text)
    reason = f"unsupported operator {op.group(1) or op.group(2).strip()}" if op else f"{type(err).__name__}: {first}"
    if op and (opset := re.search(r"opset version (\d+)", text)):
        reason += f" (opset {opset.group(1)})"
    row = _ROW.search(text)
    if row:
        reason += f" at row {row.group(1)}"
    return reason[:300]


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def export(
    model: nn.Module,
    name: str,
    runtime: str,
    root: Path,
    imgsz: int,
    batch: int,
    half: bool,
    device: torch.device,
    digest: str | None = None,
) -> Export:
    """Export a variant for a runtime, or find the export a previous run made with the same key.

    The export is made in a temporary folder next to its final place and renamed there with its `export.json`, so a
    killed run never leaves a half-written artifact in the cache. A cached export is checked first (see `_cached`).

    Args:
        model: the built (unfused) model; not changed.
        name: the variant name (the artifact's file name).
        runtime: `onnxruntime`, `openvino` or `tensorrt`.
        root: the exports folder (`<results>/exports`).
        imgsz: square input size.
        batch: static batch size.
        half: fp16 export.
        device: where the export runs (TensorRT builds on the GPU).
        digest: `model_digest(model)`, when the caller has it already.

    Raises:
        StorageError: the exports folder cannot take the artifact (full disk, read-only); nothing is left behind.
    """
    key = export_key(digest or model_digest(model), runtime, imgsz, batch, half, device)
    # root is <results>/exports: neither it nor an export in it is followed through a symlink
    final = inside(root.parent, root / f"{name}-{FORMATS[runtime]}-b{batch}-{key}", "export")
    _remove_stale_tmp(root)
    found = _cached(final, runtime)
    if found is not None:
        return found
    # host and pid in the name: a later export removes the folder only once its process is gone
    tmp = inside(root.parent, root / f".tmp-{final.name}@{_HOST}.{os.getpid()}", "export")
    dev = "cpu" if device.type == "cpu" else str(device.index or 0)
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        t0 = time.perf_counter()
        try:
            made = export_model(model, FORMATS[runtime], tmp / name, imgsz, batch, half, dev)
            result = Export("ok", made.name, round(_size_mb(made), 3), round(time.perf_counter() - t0, 2))
            result.files = _manifest(tmp)
        except Exception as err:  # any exporter failure is a result of the variant, recorded as one line
            if (full := _storage_failure(err)) is not None:  # ...except the disk's: that is no property of the model
                raise StorageError(f"cannot export {name} for {runtime} into {root}: {full}") from err
            result = Export(f"failed: {failure_reason(err)}", seconds=round(time.perf_counter() - t0, 2))
        (tmp / "export.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
        try:
            os.replace(tmp, final)
        except OSError:  # another run stored the same key meanwhile: keep theirs (tmp is removed below)
            pass
    except OSError as err:
        raise StorageError(f"cannot store the export of {name} for {runtime} in {root}: {os_error_text(err)}") from err
    finally:  # a failed or interrupted export leaves nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
    result.path = str(final / result.path) if result.path else None
    return result


_HOST = socket.gethostname()
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _storage_failure(err: BaseException) -> str | None:
    """Why an exporter error is the disk's (full, over quota, read-only), or None when it is the model's.

    The exporter may raise the OSError itself, chain it, or only repeat its text in another error.
    """
    cause = os_error_in_chain(err, _STORAGE_ERRNOS)
    if cause is not None:
        return os_error_text(cause)
    text = str(err)
    return next((os.strerror(code) for code in _STORAGE_ERRNOS if os.strerror(code) in text), None)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale_tmp(root: Path) -> None:
    """Remove the temporary folders of exports on this machine whose process is gone (killed mid-export)."""
    if not root.is_dir():
        return
    for tmp in root.glob(".tmp-*"):
        name, at, owner = tmp.name.rpartition("@")
        host, _, pid = owner.rpartition(".") if at else (_HOST, "", tmp.name.rpartition("-")[2])  # older: no host
        if host == _HOST and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _manifest(folder: Path) -> dict[str, list[Any]]:
    """Size and SHA-256 of every file of an export (its `export.json` aside), by path relative to the folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "export.json")
    return {p.relative_to(folder).as_posix(): [p.stat().st_size, _sha256(p)] for p in files}


def _inside(relative: Any) -> bool:
    """Whether a path from `export.json` stays inside the export's folder."""
    if not isinstance(relative, str) or not relative:
        return False
    path = Path(relative)
    return not path.is_absolute() and ".." not in path.parts


def _artifact_problem(final: Path, found: Export, runtime: str) -> str | None:
    """Why a cached export cannot be used as it is, or None."""
    if not isinstance(found.status, str) or not (found.path is None or _inside(found.path)):
        return "export.json is not an export record"
    if found.path is None:
        return None  # a recorded failure
    if not (final / found.path).exists():
        return f"{found.path} is missing"
    if found.files is None:  # cached before sizes and checksums were kept: it must at least load
        return _load_problem(runtime, final / found.path)
    if not isinstance(found.files, dict) or not found.files:
        return "export.json lists no files"
    for relative, entry in found.files.items():
        if not _inside(relative) or not (isinstance(entry, list) and len(entry) == 2):
            return "export.json is not an export record"
        path, (size, digest) = final / relative, entry
        if not path.is_file():
            return f"{relative} is missing"
        if path.stat().st_size != size:
            return f"{relative} is {path.stat().st_size} bytes, {size} when exported"
        if _sha256(path) != digest:
            return f"{relative} differs from the exported file (SHA-256)"
    return None


def _load_problem(runtime: str, path: Path) -> str | None:
    """Why an artifact does not load in its runtime's reader, or None (TensorRT engines are not checked)."""
    try:
        if runtime == "onnxruntime":
            import onnx

            onnx.checker.check_model(onnx.load(str(path)), full_check=False)
        elif runtime == "openvino":
            import openvino as ov

            ov.Core().read_model(next(path.glob("*.xml")))
    except Exception as err:  # whatever the reader says, the file is not the one exported
        return f"it does not load: {type(err).__name__}"
    return None


def _cached(final: Path, runtime: str) -> Export | None:
    """The export stored in `final`, checked; None when there is none, or it was damaged and moved aside."""
    if not final.exists():
        return None
    try:
        found = Export(**json.loads((final / "export.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        problem: str | None = "no export.json"
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        problem = f"export.json unreadable: {type(err).__name__}"
    else:
        problem = _artifact_problem(final, found, runtime)
    if problem is not None:
        quarantine(final, problem, "export", "it is exported again")
        return None
    found.cached = True
    found.path = str(final / found.path) if found.path else None
    return found


# --------------------------------------------------------------------------------------------------------------------
# sessions and parity


def calibrate_batchnorm(model: nn.Module, imgsz: int, steps: int = 2, batch: int = 4) -> nn.Module:
    """Set every BatchNorm's running statistics from a few forward passes on fixed random images, in place.

    As Ultralytics initialises a model, each block shrinks its input (BatchNorm's running statistics are 0 and 1, so
    nothing rescales), and the head output no longer depends on the image: the boxes are the anchor grid plus a
    constant, the class scores ~1e-5 everywhere. A parity check on such a model cannot fail. With calibrated
    statistics every layer's activations keep unit scale as in a trained model, and the output does depend on the
    input. Weights are unchanged; the model is left in eval mode.

    Args:
        model: the model.
        imgsz: image size of the passes (at most 128: the statistics barely depend on it).
        steps: forward passes.
        batch: images per pass.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the passes
    g = torch.Generator().manual_seed(1)
    size = min(imgsz, 128)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.rand(batch, 3, size, size, generator=g))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def fixed_input(imgsz: int, batch: int = 1) -> np.ndarray:
    """The parity input: uniform noise in [0, 1) from a fixed seed, like a normalised image (zeros would hide a lot)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, imgsz, imgsz, generator=g).numpy()


def parity(reference: np.ndarray, output: np.ndarray) -> float:
    """The parity figure: max |output - reference| / max |reference| (max |output| where the reference is all 0).

    Raises:
        ValueError: the shapes differ.
    """
    reference, output = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    if reference.shape != output.shape:
        raise ValueError(f"output shape {output.shape} differs from PyTorch's {reference.shape}")
    scale = float(np.abs(reference).max())
    diff = float(np.abs(output - reference).max())
    return diff / scale if scale else diff


def torch_reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The raw head output of the fused fp32 PyTorch model (a fused copy; the model is not changed)."""
    import copy

    fused = copy.deepcopy(model).cpu().float().eval()
    fused = fused.fuse(verbose=False) if hasattr(fused, "fuse") else fused
    with torch.inference_mode():
        y = fused(torch.from_numpy(x))
    return (y[0] if isinstance(y, (list, tuple)) else y).float().numpy()


def open_runner(runtime: str, path: str, device: torch.device, threads: int, half: bool) -> tuple[Runner, str]:
    """Open an exported artifact for inference.

    Args:
        runtime: `onnxruntime`, `openvino` or `tensorrt`.
        path: the artifact.
        device: the profile device (ONNX Runtime uses its CUDA provider there when installed; OpenVINO runs on CPU).
        threads: intra-op threads, the same number PyTorch uses.
        half: fp16 inference.

    Returns:
        A function from a float32 NCHW array to the first output as float32, and the provider or device that runs it.
    """
    if runtime == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        session = ort.InferenceSession(path, opts, providers=providers)
        inp = session.get_inputs()[0]
        dtype = np.float16 if "float16" in inp.type else np.float32

        def run_ort(x: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {inp.name: x.astype(dtype, copy=False)})[0], np.float32)

        return run_ort, session.get_providers()[0]
    if runtime == "openvino":
        import openvino as ov

        core = ov.Core()
        xml = next(Path(path).glob("*.xml"))
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        config["INFERENCE_PRECISION_HINT"] = "f16" if half else "f32"
        compiled = core.compile_model(core.read_model(xml), "CPU", config)
        request, out = compiled.create_infer_request(), compiled.output(0)

        def run_ov(x: np.ndarray) -> np.ndarray:
            return np.asarray(request.infer({0: x})[out], np.float32)

        return run_ov, "CPU"
    if runtime == "tensorrt":
        trt_run = tensorrt_runner(Path(path), device, half)

        def run_trt(x: np.ndarray) -> np.ndarray:
            xt = torch.from_numpy(x).to(device)
            return trt_run(xt.half() if half else xt).float().cpu().numpy()

        return run_trt, f"TensorRT ({torch.cuda.get_device_name(device)})"
    raise UnknownRuntimeError(f"no session for runtime '{runtime}'")


@dataclass
class Deployed:
    """A variant's artifacts on one runtime, opened for timing.

    Attributes:
        one: runner of the batch-1 artifact.
        many: runner of the batch-N artifact (None where it failed or was not asked for).
    """

    one: Runner
    many: Runner | None


def deploy_variant(
    model: nn.Module,
    name: str,
    runtimes: Sequence[str],
    root: Path,
    imgsz: int,
    batch: int | None,
    device: torch.device,
    threads: int,
    half: bool,
) -> tuple[dict[str, Any], dict[str, Deployed]]:
    """Export a variant for each runtime, check parity and open the artifacts.

    Args:
        model: the built (unfused) model.
        name: the variant name.
        runtimes: runtimes other than `torch`, already checked by `check_runtimes`.
        root: the exports folder.
        imgsz: square input size.
        batch: batch size of the throughput artifact (None or 1: none is made).
        device: the profile device.
        threads: intra-op threads.
        half: fp16.

    Returns:
        Record fields per runtime (`export_<rt>`, `export_mb_<rt>`, `export_s_<rt>`, `export_cached_<rt>`,
        `parity_<rt>`, `parity_flag_<rt>`, `provider_<rt>`, `parity_batch_<rt>`) and the opened runners of the
        runtimes that exported. `parity_batch_<rt>` is the parity of the batch-N artifact on N different images; the
        batch-N artifact is timed only where it is within the tolerance.
    """
    fields: dict[str, Any] = {}
    opened: dict[str, Deployed] = {}
    if not runtimes:
        return fields, opened
    digest = model_digest(model)
    x = fixed_input(imgsz)
    reference = torch_reference(model, x)
    tolerance = PARITY_TOLERANCE["float16" if half else "float32"]
    for rt in runtimes:
        made = export(model, name, rt, root, imgsz, 1, half, device, digest)
        fields.update({f"export_{rt}": made.status, f"export_mb_{rt}": made.size_mb, f"export_s_{rt}": made.seconds})
        fields.update({f"export_cached_{rt}": made.cached, f"parity_{rt}": None, f"parity_flag_{rt}": None})
        fields[f"provider_{rt}"] = fields[f"parity_batch_{rt}"] = None
        if made.status != "ok" or made.path is None:
            continue
        try:
            run, provider = open_runner(rt, made.path, device, threads, half)
            value = parity(reference, run(x))
        except Exception as err:  # an artifact the runtime cannot load or run is a failed export for this runtime
            fields[f"export_{rt}"] = f"failed: {rt} cannot run it: {failure_reason(err)}"
            continue
        fields[f"parity_{rt}"], fields[f"parity_flag_{rt}"] = value, bool(value > tolerance)
        fields[f"provider_{rt}"] = provider
        opened[rt] = Deployed(run, None)
        if batch and batch > 1:
            made_n = export(model, name, rt, root, imgsz, batch, half, device, digest)
            if made_n.status == "ok" and made_n.path is not None:
                try:  # throughput is measured where the export allows; latency does not depend on it
                    many, _ = open_runner(rt, made_n.path, device, threads, half)
                    xn = fixed_input(imgsz, batch)
                    fields[f"parity_batch_{rt}"] = parity(torch_reference(model, xn), many(xn))
                except Exception:
                    continue
                opened[rt].many = many if fields[f"parity_batch_{rt}"] <= tolerance else None
    return fields, opened


def runtime_runners(
    deployed: dict[str, dict[str, Deployed]],
    one: np.ndarray,
    many: np.ndarray,
    singles: dict[Hashable, Callable[[], Any]],
    batches: dict[Hashable, Callable[[], Any]],
) -> None:
    """Add a timing callable per (variant, runtime) to the batch-1 and batch-N schedules, in place.

    One interleaved schedule holds every (variant, runtime) pair, so all of them share the machine's state alike.
    """
    for name, opened in deployed.items():
        for rt, d in opened.items():
            singles[(name, rt)] = partial(d.one, one)
            if d.many is not None:
                batches[(name, rt)] = partial(d.many, many)
