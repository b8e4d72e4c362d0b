"""Training throughput of our loop against a plain timm loop, on whatever device this process finds.

For each model setting (model, image size, stem stride, batch size) it times training steps in three
modes, after a warm-up (which compiles), as the median over several windows (CUDA events on a GPU,
``time.perf_counter`` on a CPU):

* ``ours-real``: :func:`convnext_report.engine.train_one_epoch` with our model, optimiser and
  schedule over a :class:`~convnext_report.data.DeviceLoader` of real CIFAR-100 with the full train
  augmentation (crop, flip, RandAugment n2m9), channels_last, bf16 and compilation as
  :mod:`convnext_report.accel` defaults them (on a GPU: compiled);
* ``ours-synthetic``: the same loop and model over random uint8 images already on the device (only
  the normalisation of the input pipeline is left): the difference to ``ours-real`` is the pipeline;
* ``eager-reference``: the loop anyone would write: ``timm.create_model``, ``torch.optim.AdamW``,
  bf16 autocast, no compile, NCHW, ready float batches on the device, torch's default flags.

FLOPs per image are one training step's forward and backward under ``FlopCounterMode`` (matmuls and
convolutions); MFU divides the achieved FLOP/s by the bf16 matmul peak measured in the same process
(on a CPU: the fp32 peak, and the rows say so). ``--packed`` runs K processes of the same timed
``ours-real`` loop at once (a packed sweep) and records their summed images/s as mode ``packed-K``.

Rows are merged into ``<out>/<device-slug>.json`` (atomically, after every setting), replacing rows
of the same setting, mode and device. See benchmarks/README.md for the commands and the targets.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import sys
import time
from itertools import islice
from pathlib import Path
from queue import Empty
from typing import Any, Callable, Iterator

import timm
import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from convnext_report import accel
from convnext_report.atomic import write_json_atomic
from convnext_report.config import TrainConfig
from convnext_report.data import DeviceLoader, get_dataset_spec, load_split, make_eval_transform, make_train_transform
from convnext_report.engine import train_one_epoch
from convnext_report.environment import cpu_model, git_state, now_iso
from convnext_report.models import build_model_from_config
from convnext_report.optim import build_optimizer, build_scheduler

REPO = Path(__file__).resolve().parents[1]
MODES = ("ours-synthetic", "ours-real", "eager-reference")
#: model -> (image size, stem stride): 32 px with the small-image stem, ImageNet's 224 px with its stem
SETTINGS = {"convnextv2_atto": (32, 2), "convnext_tiny": (224, 4), "convnextv2_nano": (32, 2),
            "convnextv2_tiny": (32, 2), "convnextv2_base": (32, 2)}  #: in the order they run (targets first)
GPU_BATCH = {"convnextv2_atto": 2048, "convnextv2_nano": 2048, "convnextv2_tiny": 1024, "convnextv2_base": 512,
             "convnext_tiny": 256}  #: batches that keep an H100 busy
TINY_BATCH = {"convnextv2_atto": 4, "convnextv2_nano": 2, "convnextv2_tiny": 2, "convnextv2_base": 1,
              "convnext_tiny": 1}  #: --tiny: a CPU smoke of every code path
KEY = ("model", "image_size", "stem_stride", "batch_size", "mode", "device")  #: a row's identity
NUM_CLASSES = 100


def sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (what a measurement is worth)."""
    return float(f"{value:.{digits}g}")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_label(device: torch.device) -> tuple[str, str]:
    """(device field of a row, file slug): the GPU's name, or ``CPU <model> (<n> threads)``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return name, slug(name)
    return f"CPU {cpu_model()} ({torch.get_num_threads()} threads)", "cpu-" + slug(cpu_model())


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` without the rows ``new`` replaces (same :data:`KEY`), then ``new``; sorted."""
    keys = {tuple(r[k] for k in KEY) for r in new}
    rows = [r for r in old if tuple(r.get(k) for k in KEY) not in keys] + list(new)
    return sorted(rows, key=lambda r: (r["device"], r["model"], r["image_size"], r["batch_size"], r["mode"]))


def write_rows(path: Path, rows: list[dict]) -> None:
    old = json.loads(path.read_text()) if path.is_file() else []
    write_json_atomic(path, merge_rows(old, rows))


# --------------------------------------------------------------------------- measuring


class Timer:
    """Wall time of queued device work: CUDA events on a GPU, ``perf_counter`` on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "Timer":
        accel.synchronize(self.device)
        if self.device.type == "cuda":
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self.t0


def peak_tflops(device: torch.device) -> tuple[float, str]:
    """The best of three timings of large matmuls: bf16 on a GPU, fp32 on a CPU (TFLOP/s, dtype)."""
    n, dtype, reps = (8192, torch.bfloat16, 20) if device.type == "cuda" else (1024, torch.float32, 4)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        with Timer(device) as t:
            for _ in range(reps):
                a @ b
        best = max(best, 2 * n**3 * reps / t.seconds / 1e12)
    return best, str(dtype).removeprefix("torch.")


def conv_backward_flops(grad_out_shape: list[int], x_shape: list[int], w_shape: list[int], *args: Any,
                        out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient (input, weight) costs what the
    forward convolution costs. torch's own formula counts the weight gradient of a grouped convolution
    ``groups`` times over (a 7x7 depthwise convolution of 320 channels: 320 times), which would make a
    ConvNeXt's backward look several times its forward."""
    transposed, output_mask = args[4], args[7]
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flops_per_image(config: TrainConfig) -> float:
    """Matmul and convolution FLOPs of one training image: forward and backward, on the meta device
    (``FlopCounterMode``, with :func:`conv_backward_flops` for the convolutions' backward)."""
    with torch.device("meta"):
        model = build_model_from_config(config, NUM_CLASSES).train()
        x = torch.zeros(2, 3, config.image_size, config.image_size)
    fixed = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=fixed) as counter:
        model(x).float().sum().backward()
    return counter.get_total_flops() / 2


def measure(run: Callable[[int, int], Any], device: torch.device, batch: int, args: argparse.Namespace,
            before_windows: Callable[[], None] | None = None) -> dict[str, Any]:
    """``run(steps, epoch)``: warm-up once (compiles), then ``args.windows`` timed windows."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    warm = run(args.warmup_steps, 0)
    accel.synchronize(device)
    warmup_seconds = time.perf_counter() - t0
    if before_windows is not None:
        before_windows()
    rates = []
    for window in range(args.windows):
        with Timer(device) as t:
            run(args.steps, window + 1)
        rates.append(args.steps * batch / t.seconds)
    return {
        "images_per_second": statistics.median(rates), "window_images_per_second": [sig(r) for r in rates],
        "warmup_seconds": round(warmup_seconds, 3),
        "first_step_seconds": warm.get("first_step_seconds") if isinstance(warm, dict) else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


# --------------------------------------------------------------------------- the three loops


class Take:
    """The first ``steps`` batches of ``loader`` for ``epoch`` (a loader sized for one window)."""

    def __init__(self, loader: Any, steps: int, epoch: int) -> None:
        if steps > len(loader):
            raise ValueError(f"{steps} steps per window but the loader has {len(loader)}: use fewer --steps")
        self.loader, self.steps = loader, steps
        loader.set_epoch(epoch)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator:
        return islice(iter(self.loader), self.steps)


class Synthetic:
    """Random uint8 batches resident on the device, normalised like the real pipeline's last stage;
    ``window(steps)`` makes it a loader of ``steps`` batches."""

    def __init__(self, batch: int, size: int, device: torch.device, distinct: int = 4) -> None:
        spec = get_dataset_spec("cifar100")
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (distinct, batch, 3, size, size), dtype=torch.uint8, generator=g).to(device)
        self.labels = torch.randint(0, NUM_CLASSES, (distinct, batch), generator=g).to(device)
        self.transform = make_eval_transform(spec, size).to(device)
        self.steps = 0

    def window(self, steps: int, epoch: int = 0) -> "Synthetic":
        self.steps = steps
        return self

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator:
        for i in range(self.steps):
            yield self.transform(self.images[i % len(self.images)]), self.labels[i % len(self.labels)]


def bench_config(model: str, batch: int, args: argparse.Namespace) -> TrainConfig:
    size, stride = SETTINGS[model]
    return TrainConfig(model=model, dataset="cifar100", image_size=size, stem_stride=stride, batch_size=batch,
                       randaugment="n2m9", crop_padding=4, hflip=True, epochs=100, compile=args.compile)


class Ours:
    """Our model, optimiser, schedule and loop, built as ``parts.build_parts`` builds them."""

    def __init__(self, config: TrainConfig, device: torch.device, compile_mode: str | None) -> None:
        accel.configure_cuda(device)
        torch._dynamo.reset()  # a fresh compile cache per model: no recompile limit across models
        self.config, self.device = config, device
        self.channels_last = config.channels_last and device.type == "cuda"
        model = build_model_from_config(config, NUM_CLASSES).to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config, steps_per_epoch=1000)
        self.model = accel.compile_model(model, device=device, enabled=config.compile, mode=compile_mode)
        self.first = True

    def loop(self, loader: Any, epoch: int) -> dict:
        """One ``train_one_epoch`` over ``loader``; the very first times its first step (the compile)."""
        stats = train_one_epoch(self.model, loader, self.optimizer, self.scheduler, criterion=nn.CrossEntropyLoss(),
                                device=self.device, amp=self.config.amp, epoch=epoch, progress=False,
                                channels_last=self.channels_last, time_first_step=self.first)
        self.first = False
        return stats


def real_loader(config: TrainConfig, device: torch.device, args: argparse.Namespace) -> DeviceLoader:
    spec = get_dataset_spec(config.dataset)
    data = load_split(config.dataset, "train", data_dir=args.data_dir, per_class=args.train_per_class)
    transform = make_train_transform(spec, config.image_size, crop_padding=config.crop_padding, hflip=config.hflip,
                                     randaugment=config.randaugment)
    return DeviceLoader(data, config.batch_size, transform=transform, shuffle=True, drop_last=True, device=device)


def eager_reference(config: TrainConfig, device: torch.device) -> Callable[[int, int], None]:
    """The plain loop: timm's model (same stem as ours), AdamW, bf16 autocast on CUDA, NCHW, torch defaults."""
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    model = timm.create_model(config.model, num_classes=NUM_CLASSES, drop_path_rate=config.drop_path_rate)
    if config.stem_stride != model.stem[0].stride[0]:  # the same network as ours: a stride-s patchify stem
        model.stem[0] = nn.Conv2d(3, model.stem[0].out_channels, config.stem_stride, stride=config.stem_stride)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    size, b = config.image_size, config.batch_size
    batches = [(torch.randn(b, 3, size, size, device=device), torch.randint(0, NUM_CLASSES, (b,), device=device))
               for _ in range(2)]

    def run(steps: int, epoch: int) -> None:
        for i in range(steps):
            x, y = batches[i % 2]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return run


# --------------------------------------------------------------------------- settings and rows


def row(config: TrainConfig, mode: str, result: dict, env: dict, flops: float, **extra: Any) -> dict:
    """One result row: the keys the book reads first, then the details."""
    tflops = result["images_per_second"] * flops / 1e12
    return {
        "model": config.model, "image_size": config.image_size, "stem_stride": config.stem_stride,
        "batch_size": config.batch_size, "mode": mode, "images_per_second": sig(result["images_per_second"]),
        "tflops": sig(tflops), "mfu": sig(tflops / env["peak_tflops"]),
        "peak_memory_gb": None if result.get("peak_memory_gb") is None else sig(result["peak_memory_gb"]),
        "device": env["device"], "torch": torch.__version__, "git_commit": env["git_commit"],
        "device_type": env["device_type"], "peak_tflops": sig(env["peak_tflops"]),
        "peak_dtype": env["peak_dtype"], "flops_per_image": flops,
        **{k: v for k, v in result.items() if k not in ("images_per_second", "peak_memory_gb")},
        "steps": env["steps"], "windows": env["windows"], "measured_at": now_iso(), "python": platform.python_version(),
        **extra,
    }


def run_setting(model: str, batch: int, args: argparse.Namespace, env: dict, device: torch.device) -> list[dict]:
    """Every selected mode for one model setting (ours share one compiled model: one compile). A mode
    that fails (e.g. out of memory) is reported and left out; the others still run."""
    config = bench_config(model, batch, args)
    flops = flops_per_image(config)
    rows: list[dict] = []
    wanted = [m for m in MODES if m in args.modes]

    def attempt(mode: str, measure_it: Callable[[], dict], **extra: Any) -> None:
        try:
            rows.append(row(config, mode, measure_it(), env, flops, **{k: v() if callable(v) else v
                                                                         for k, v in extra.items()}))
            _report(rows[-1])
        except Exception as err:  # noqa: BLE001 - one failed mode must not lose the others
            print(f"  {mode:>15}: FAILED {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                  flush=True)

    if {"ours-synthetic", "ours-real"} & set(wanted):
        try:
            ours = Ours(config, device, args.compile_mode)
        except Exception as err:  # noqa: BLE001
            print(f"  ours: FAILED to build: {type(err).__name__}: {err}", flush=True)
            ours = None
        if ours is not None and "ours-synthetic" in wanted:
            synthetic = Synthetic(batch, config.image_size, device)
            attempt("ours-synthetic",
                    lambda: measure(lambda n, e: ours.loop(synthetic.window(n), e), device, batch, args),
                    compiled=lambda: accel.describe(ours.model), cuda_settings=accel.configure_cuda(device))
        if ours is not None and "ours-real" in wanted:
            loader = real_loader(config, device, args)
            attempt("ours-real", lambda: measure(lambda n, e: ours.loop(Take(loader, n, e), e), device, batch, args),
                    compiled=lambda: accel.describe(ours.model), cuda_settings=accel.configure_cuda(device))
        del ours
        _free(device)
    if "eager-reference" in wanted:
        attempt("eager-reference", lambda: measure(eager_reference(config, device), device, batch, args),
                compiled="eager (plain timm loop)", cuda_settings={})
    _free(device)
    return rows


def _report(r: dict) -> None:
    first = r.get("first_step_seconds")
    print(f"  {r['mode']:>15}: {r['images_per_second']:>10.1f} img/s  {r['tflops']:.3f} TFLOP/s  MFU {r['mfu']:.3f}"
          f"  warm-up {r['warmup_seconds']:.1f}s" + (f" (first step {first:.1f}s)" if first else "")
          + f"  [{r['compiled']}]", flush=True)


def _free(device: torch.device) -> None:
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- packed sweeps


def _packed_worker(rank: int, args: argparse.Namespace, threads: int, barrier: Any, queue: Any) -> None:
    """One process of a packed sweep: warm up, wait for the others, time the same windows."""
    try:
        torch.set_num_threads(threads)
        inductor_config.compile_threads = threads  # K processes share the CPUs (and the compile cache)
        device = resolve(args.device)
        config = bench_config(args.packed_model, args.packed_batch_size, args)
        ours = Ours(config, device, args.compile_mode)
        loader = real_loader(config, device, args)
        result = measure(lambda steps, epoch: ours.loop(Take(loader, steps, epoch), epoch), device,
                         config.batch_size, args, before_windows=lambda: barrier.wait(timeout=args.packed_timeout))
        queue.put({"rank": rank, **result, "compiled": accel.describe(ours.model)})
    except BaseException as err:  # noqa: BLE001 - report, and release the others from the barrier
        barrier.abort()
        queue.put({"rank": rank, "error": f"{type(err).__name__}: {err}"})


def run_packed(k: int, args: argparse.Namespace, env: dict, device: torch.device) -> dict | None:
    """K processes training at once; the row's images/s (and TFLOP/s, memory) is their sum."""
    ctx = mp.get_context("spawn")
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # spawned processes import this file by name (when it is not __main__)
        sys.path.insert(0, here)
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    threads = max(1, (torch.get_num_threads() if device.type == "cpu" else os.cpu_count() or 1) // k)
    procs = [ctx.Process(target=_packed_worker, args=(r, args, threads, barrier, queue)) for r in range(k)]
    for p in procs:
        p.start()
    results: list[dict] = []
    deadline = time.monotonic() + args.packed_timeout
    try:
        while len(results) < k and time.monotonic() < deadline:
            try:
                results.append(queue.get(timeout=2.0))
            except Empty:
                if not any(p.is_alive() for p in procs) and queue.empty():
                    break  # a process died without reporting
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    errors = [r["error"] for r in results if "error" in r]
    if errors or len(results) < k:
        print(f"  packed-{k}: failed: {errors or 'a process did not report'}", flush=True)
        return None
    config = bench_config(args.packed_model, args.packed_batch_size, args)
    total = {"images_per_second": sum(r["images_per_second"] for r in results),
             "peak_memory_gb": sum(r["peak_memory_gb"] for r in results) if device.type == "cuda" else None,
             "warmup_seconds": max(r["warmup_seconds"] for r in results), "first_step_seconds": None}
    out = row(config, f"packed-{k}", total, env, flops_per_image(config), processes=k,
              per_process_images_per_second=[sig(r["images_per_second"]) for r in results],
              compiled=results[0]["compiled"], cuda_settings=accel.configure_cuda(device))
    _report(out)
    return out


# --------------------------------------------------------------------------- command line


def resolve(spec: str) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(spec)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(SETTINGS), help="comma-separated, from: " + ", ".join(SETTINGS))
    p.add_argument("--batch-size", default=None,
                   help="one size for all, or model=size,... (default: GPU_BATCH on CUDA, TINY_BATCH with --tiny)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    p.add_argument("--warmup-steps", type=int, default=None, help="steps before timing (compile) [15; tiny 1]")
    p.add_argument("--steps", type=int, default=None, help="steps per timed window [20; tiny 1]")
    p.add_argument("--windows", type=int, default=None, help="timed windows; the median is kept [5; tiny 2]")
    p.add_argument("--packed", default=None, help="K values for packed atto sweeps, '' for none [1,2,4,8; tiny 1,2]")
    p.add_argument("--packed-model", default="convnextv2_atto")
    p.add_argument("--packed-batch-size", type=int, default=None, help="per process [256, the book's; tiny 4]")
    p.add_argument("--packed-timeout", type=float, default=600.0, help="seconds to wait for a packed process")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="auto: on CUDA yes, else no")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default: torch's default)")
    p.add_argument("--train-per-class", type=int, default=None, help="CIFAR-100 subset for ours-real [all; tiny 20]")
    p.add_argument("--data-dir", default=None, help="parquet root (default: $CONVNEXT_REPORT_DATA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="tiny settings: every code path in under a minute on a CPU")
    p.add_argument("--budget-seconds", type=float, default=None, help="start nothing new after this many seconds")
    p.add_argument("--git-commit", default=None, help="the commit measured (default: git rev-parse HEAD)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="a folder, or a .json file")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.models = [m for m in args.models.split(",") if m]
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(args.models) - set(SETTINGS)) + sorted(set(args.modes) - set(MODES))
    if unknown:
        p.error(f"unknown model or mode: {unknown}")
    defaults = dict(warmup_steps=(1, 15), steps=(1, 20), windows=(2, 5), packed_batch_size=(4, 256),
                    train_per_class=(20, None), packed=("1,2", "1,2,4,8"))
    for key, (small, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if tiny else full)
    args.packed = [int(k) for k in str(args.packed).split(",") if k.strip()]
    args.compile = {"auto": None, "on": True, "off": False}[args.compile]
    base = TINY_BATCH if tiny else GPU_BATCH
    if args.batch_size is None:
        args.batches = dict(base)
    elif "=" in args.batch_size:
        args.batches = {**base, **{k: int(v) for k, v in (pair.split("=") for pair in args.batch_size.split(","))}}
    else:
        args.batches = {m: int(args.batch_size) for m in SETTINGS}
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    t0 = time.perf_counter()
    device = resolve(args.device)
    name, file_slug = device_label(device)
    out = Path(args.out)
    path = out if out.suffix == ".json" else out / f"{file_slug}.json"
    peak, peak_dtype = peak_tflops(device)
    env = {"device": name, "device_type": device.type, "peak_tflops": peak, "peak_dtype": peak_dtype,
           "git_commit": args.git_commit or git_state(REPO)["commit"], "steps": args.steps, "windows": args.windows}
    print(f"{name}: measured {peak_dtype} matmul peak {peak:.2f} TFLOP/s; torch {torch.__version__}; "
          f"writing {path}", flush=True)

    def over_budget(what: str) -> bool:
        late = args.budget_seconds is not None and time.perf_counter() - t0 > args.budget_seconds
        if late:
            print(f"skipped {what}: the budget of {args.budget_seconds:.0f} s is spent", flush=True)
        return late

    # the packed sweeps run right after their model's own setting: the targets come first under a budget
    plan: list[tuple[str, Any]] = [("setting", m) for m in args.models]
    at = next((i + 1 for i, (_, m) in enumerate(plan) if m == args.packed_model), len(plan))
    plan[at:at] = [("packed", k) for k in args.packed]
    for kind, what in plan:
        if over_budget(f"packed-{what}" if kind == "packed" else what):
            continue
        if kind == "setting":
            batch = args.batches[what]
            print(f"{what} @ {SETTINGS[what][0]} px, stem stride {SETTINGS[what][1]}, batch {batch} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            write_rows(path, run_setting(what, batch, args, env, device))
            continue
        print(f"packed sweep: {what} x {args.packed_model}, batch {args.packed_batch_size} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        load_split("cifar100", "train", data_dir=args.data_dir, per_class=args.train_per_class)  # cache it once
        packed = run_packed(what, args, env, device)
        if packed is not None:
            write_rows(path, [packed])
    print(f"done in {time.perf_counter() - t0:.0f} s: {path}", flush=True)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
