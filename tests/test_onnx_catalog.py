"""Every built-in module exports to ONNX Runtime and runs with parity, through yoloab's own export path.

Each module sits in yolov8n where the article puts it (the backbone role: as the backbone), nc=3, 64 px, weights
from `build_seeded` with batch norm calibrated as `yoloab profile --runtime onnxruntime` does; exports go through
`yoloab.deploy.deploy_variant` (Ultralytics' exporter, cached by weights), parity against the fused PyTorch model.
The 20 exports took 48 s on an idle 2-core machine (197 s while other test runs shared it). `yoloab profile
--runtime onnxruntime --imgsz 64 --module all --nc 3 --format json --no-latency` does the same and also counts
FLOPs, which makes it several times slower.
"""

from __future__ import annotations

import pytest
import torch

import yoloab.deploy as deploy
from yoloab.models import get_base_model
from yoloab.profiling import ProfileSettings, profile_variants
from yoloab.registry import MODULES
from yoloab.variants import baseline, build_seeded, make_variant

pytest.importorskip("onnxruntime")

IMGSZ, NC = 64, 3
CPU = torch.device("cpu")
BUILTIN = [e.name for e in MODULES if e.builtin]  # LDConv is AKConv's alias, not a second entry


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


def _variant(module: str | None):
    base = get_base_model("yolov8n")
    if module is None:
        return baseline(base)
    return make_variant(base, module, "backbone" if MODULES.get(module).role == "backbone" else "article")


@pytest.mark.slow  # one export each: 1-3 s on an idle 2-core machine, RevCol (a 128 MB model) about 10 s
@pytest.mark.parametrize("module", BUILTIN, ids=BUILTIN)
def test_module_exports_to_onnxruntime_with_parity(exports, module):
    variant = _variant(module)
    model = deploy.calibrate_batchnorm(build_seeded(variant, nc=NC), IMGSZ)
    assert any(isinstance(m, MODULES.get(module).cls) for m in model.modules())  # the module is really in it
    fields, _ = deploy.deploy_variant(model, variant.name, ["onnxruntime"], exports, IMGSZ, None, CPU, 2, False)
    assert fields["export_onnxruntime"] == "ok", fields["export_onnxruntime"]
    assert fields["provider_onnxruntime"] == "CPUExecutionProvider"
    assert fields["parity_onnxruntime"] < 1e-3 and fields["parity_flag_onnxruntime"] is False


@pytest.mark.slow  # two exports of yolov8n (batch 1 and 2) and a short timing
def test_a_parity_failure_is_flagged_and_its_batch_artifact_is_not_timed(exports, monkeypatch):
    real = deploy.torch_reference
    monkeypatch.setattr(deploy, "torch_reference", lambda model, x: real(model, x) * 1.01)  # off by 1% (forced)
    timing = {"threads": 1, "warmup_s": 0.05, "rounds": 2, "round_s": 0.05}
    settings = ProfileSettings(
        imgsz=IMGSZ, nc=NC, batch=2, runtimes=("torch", "onnxruntime"), exports=exports, **timing
    )
    (record,) = profile_variants([_variant(None)], settings)
    assert record["export_onnxruntime"] == "ok"
    # max |x - 1.01 x| / max |1.01 x| = 0.01 / 1.01, up to the export's own round-off (parity ~1e-5 above)
    assert record["parity_onnxruntime"] == pytest.approx(0.01 / 1.01, rel=0.01)
    assert record["parity_batch_onnxruntime"] == pytest.approx(0.01 / 1.01, rel=0.01)
    assert record["parity_flag_onnxruntime"] is True
    # the batch-2 artifact failed parity: it is not timed, so no throughput; batch-1 latency and torch's stay
    assert record["throughput_ips_onnxruntime"] is None
    assert record["latency_ms_onnxruntime"] > 0 and record["throughput_ips"] > 0
