"""benchmarks/throughput.py (rows, merging, FLOPs, a tiny CPU run) and the Performance page's tables."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from convnext_report.complexity import count_macs
from convnext_report.models import build_model
from convnext_report.report import performance

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {"model", "image_size", "stem_stride", "batch_size", "mode", "images_per_second", "tflops", "mfu",
            "peak_memory_gb", "device", "torch", "git_commit"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("throughput", REPO / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["throughput"] = module
    spec.loader.exec_module(module)
    return module


def _row(mode: str, ips: float, model: str = "convnextv2_atto", device: str = "NVIDIA H100", **kw) -> dict:
    size, stride = (224, 4) if model == "convnext_tiny" else (32, 2)
    return {"model": model, "image_size": size, "stem_stride": stride, "batch_size": 256, "mode": mode,
            "images_per_second": ips, "tflops": ips * 1e-3, "mfu": ips * 1e-6, "peak_memory_gb": 1.0,
            "device": device, "torch": "2.11.0", "git_commit": "abc", "device_type": kw.pop("device_type", "cuda"),
            "measured_at": kw.pop("measured_at", "2026-12-01T10:00:00+00:00"), "flops_per_image": 1e9,
            "first_step_seconds": 30.0, **kw}


def test_merge_replaces_the_same_setting_and_keeps_the_rest(bench, tmp_path) -> None:
    old = [_row("ours-real", 1.0), _row("eager-reference", 2.0), _row("ours-real", 3.0, device="CPU x")]
    new = [_row("ours-real", 10.0)]
    merged = bench.merge_rows(old, new)
    assert sorted((r["device"], r["mode"], r["images_per_second"]) for r in merged) == \
        [("CPU x", "ours-real", 3.0), ("NVIDIA H100", "eager-reference", 2.0), ("NVIDIA H100", "ours-real", 10.0)]
    path = tmp_path / "r.json"
    bench.write_rows(path, old)
    bench.write_rows(path, new)
    assert json.loads(path.read_text()) == merged


def test_device_label_on_cpu_says_cpu(bench) -> None:
    name, slug = bench.device_label(torch.device("cpu"))
    assert name.startswith("CPU ") and slug.startswith("cpu-") and slug == bench.slug(slug)


def test_arguments(bench) -> None:
    tiny = bench.parse(["--tiny", "--batch-size", "convnext_tiny=3"])
    assert tiny.batches["convnext_tiny"] == 3 and tiny.batches["convnextv2_atto"] == bench.TINY_BATCH["convnextv2_atto"]
    assert tiny.packed == [1, 2] and tiny.compile is None and tiny.models == list(bench.SETTINGS)
    full = bench.parse(["--packed", "", "--compile", "off", "--batch-size", "64"])
    assert full.packed == [] and full.compile is False and set(full.batches.values()) == {64}
    assert full.batches.keys() == bench.SETTINGS.keys() and full.steps == 20
    with pytest.raises(SystemExit):
        bench.parse(["--models", "resnet50"])


def test_flops_per_image_are_forward_and_backward(bench) -> None:
    config = bench.bench_config("convnextv2_atto", 8, bench.parse(["--tiny"]))
    forward = 2 * count_macs(build_model("convnextv2_atto", 100, stem_stride=2), 32)
    ratio = bench.flops_per_image(config) / forward
    assert 2.9 < ratio <= 3.0  # backward: grads of inputs and weights (none for the images)


def test_depthwise_backward_is_counted_once(bench) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(64, 64, 7, padding=3, groups=64, bias=False, device="meta")
    x = torch.zeros(2, 64, 8, 8, device="meta", requires_grad=True)
    counts = []
    for mapping in ({}, {torch.ops.aten.convolution_backward: bench.conv_backward_flops}):
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            conv(x).sum().backward()
        counts.append(counter.get_total_flops())
    forward = 2 * 2 * 64 * 49 * 64  # 2 FLOPs per multiply-add, batch 2, 64 channels, 7x7, 8x8 outputs
    assert counts[1] == 3 * forward  # forward + input gradient + weight gradient
    assert counts[0] > 30 * forward  # torch's formula: the weight gradient counted once per group


@pytest.mark.slow
def test_a_tiny_cpu_run_writes_every_mode(bench, data_root, tmp_path) -> None:
    out = tmp_path / "cpu.json"
    bench.main(["--tiny", "--models", "convnextv2_atto", "--batch-size", "2", "--steps", "1", "--windows", "2",
                "--packed", "1", "--packed-batch-size", "2", "--train-per-class", "2", "--data-dir",
                str(data_root), "--out", str(out)])
    rows = json.loads(out.read_text())
    assert sorted(r["mode"] for r in rows) == ["eager-reference", "ours-real", "ours-synthetic", "packed-1"]
    for r in rows:
        assert REQUIRED <= set(r) and r["device"].startswith("CPU") and r["device_type"] == "cpu"
        assert r["images_per_second"] > 0 and r["peak_dtype"] == "float32" and r["peak_memory_gb"] is None
        assert r["mfu"] == pytest.approx(r["tflops"] / r["peak_tflops"], rel=2e-3)
    assert next(r for r in rows if r["mode"] == "ours-synthetic")["first_step_seconds"] > 0


# --------------------------------------------------------------------------- the Performance page


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(rows))


def test_gpu_rows_win_over_cpu_rows(tmp_path) -> None:
    cpu = [_row(m, 1.0, device="CPU AMD EPYC (2 threads)", device_type="cpu") for m in performance.MODES]
    _write(tmp_path, "cpu-amd-epyc.json", cpu)
    rows = performance.measured_rows(performance.load_rows(tmp_path))
    assert rows.attrs["kind"] == "cpu" and len(rows) == 3
    assert "Measured on CPU; GPU rows will replace these" in performance.benchmark_banner(rows).data
    _write(tmp_path, "nvidia-h100.json", [_row("ours-real", 900.0), _row("ours-synthetic", 1000.0),
                                          _row("eager-reference", 500.0)])
    rows = performance.measured_rows(performance.load_rows(tmp_path))
    assert rows.attrs["kind"] == "gpu" and set(rows["device"]) == {"NVIDIA H100"}
    banner = performance.benchmark_banner(rows).data
    assert "NVIDIA H100" in banner and "CPU" not in banner


def test_throughput_table_and_figure_from_rows(tmp_path) -> None:
    rows = [_row("ours-real", 900.0), _row("ours-synthetic", 1000.0), _row("eager-reference", 500.0),
            _row("ours-real", 80.0, model="convnext_tiny"), _row("ours-synthetic", 100.0, model="convnext_tiny"),
            _row("eager-reference", 90.0, model="convnext_tiny")]
    _write(tmp_path, "gpu.json", rows)
    rows = performance.measured_rows(performance.load_rows(tmp_path))
    table = performance.throughput(rows).set_index("model")
    assert list(table.index) == ["convnextv2_atto", "convnext_tiny"]
    assert table.loc["convnextv2_atto", "synthetic ÷ eager"] == 2.0
    assert table.loc["convnext_tiny", "real ÷ synthetic"] == 0.8
    assert performance.plot_throughput(performance.throughput(rows)).axes[0].has_data()


def test_no_rows_yet(tmp_path) -> None:
    rows = performance.measured_rows(performance.load_rows(tmp_path / "missing"))
    assert rows.attrs["kind"] == "none" and "No measurements yet" in performance.benchmark_banner(rows).data
    assert performance.throughput(rows).empty
    assert not performance.plot_throughput(performance.throughput(rows)).axes[0].has_data()


def test_committed_rows_are_labelled() -> None:
    """Every committed file of CPU rows says CPU in its name and in every row's device."""
    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        rows = json.loads(path.read_text())
        assert rows and all(REQUIRED <= set(r) for r in rows), path.name
        if path.name.startswith("cpu-") or any(r.get("device_type") == "cpu" for r in rows):
            assert path.name.startswith("cpu-") and all(r["device"].startswith("CPU") for r in rows), path.name
