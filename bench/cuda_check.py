"""One prepared device check: every tool on CUDA against the CPU, with a forced out-of-memory back-off.

    python bench/cuda_check.py                   # on a CUDA machine: 1080p and 4K (meant to take < 8 min on one H200)
    python bench/cuda_check.py --sizes 1080p     # shorter
    python bench/cuda_check.py --device cpu --sizes tiny   # the logic alone, on the CPU (what tests/test_bench.py runs)

For each size it writes a synthetic dataset (the demo scene, 2 cameras, a clean background per camera)
and synthesized weights of the tools' default models (RVM resnet50, BGMv2 resnet101, SCHP LIP with
``--detector none``), computes every tool's masks on the CPU as the reference, then runs every tool on
the device under test: float32 (with CUDA graphs, the default, and without) and ``--fp16``, ``--decode cpu`` and
``--decode gpu`` (RVM and BGMv2),
one worker, and two workers (``--device cuda:0,cuda:1``) when there are two devices. Each run's masks
are compared with the CPU's (``TOLERANCE``: the mean absolute difference in 8-bit levels and the share of
pixels more than 32 levels apart; SCHP: the share of pixels whose mask differs). Then one run per tool
is forced through the out-of-memory back-off (the process's CUDA memory capped with
``torch.cuda.set_per_process_memory_fraction`` just above what its batch of one needs, and 4x the
batch asked for; on the CPU an injected out-of-memory error) and must complete with masks within
tolerance. It prints one table: images/s, model-only images/s, efficiency (tool / model-only), peak
device memory, the mask check; and exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SIZES = {"tiny": (48, 64), "540p": (540, 960), "1080p": (1080, 1920), "4K": (2160, 3840)}
MODELS = {"rvm": ("resnet50", "rvm_resnet50"), "bgmv2": ("resnet101", "bgmv2_resnet101"), "schp": ("lip", "schp_lip")}
# (mean absolute difference in levels, share of pixels more than 32 levels apart) allowed against the CPU
TOLERANCE = {"fp32": (1.0, 0.01), "fp16": (2.0, 0.03)}
SCHP_TOLERANCE = {"fp32": 0.005, "fp16": 0.02}  # share of mask pixels that differ


@dataclass
class Result:
    """One run of one tool on the device under test."""

    tool: str
    size: str
    config: str
    ips: float | None = None
    model_ips: float | None = None
    cuda_peak: int | None = None
    batch: str = ""
    check: str = ""
    ok: bool = True
    notes: list[str] = field(default_factory=list)


def make_dataset(root: Path, size: tuple[int, int], cameras: int, frames: int) -> Path:
    """The demo scene as JPEG frames and a PNG background per camera (``bkgd/<camera>.png``)."""
    from easyvolcap.image_io import write_image
    from easyvolcap.synthetic.capture import background, make_demo_dataset

    make_demo_dataset(root, cameras, frames, size, odd_size=None, ext=".jpg")
    for c in range(cameras):
        write_image(root / "bkgd" / f"{c:02d}.png", background(*size, seed=c))
    return root


def read_masks(folder: Path) -> dict[str, np.ndarray]:
    """Every mask under ``folder`` (``<camera>/<frame>``), as 8-bit arrays."""
    return {str(p.relative_to(folder).with_suffix("")): cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            for p in sorted(folder.rglob("*")) if p.suffix in (".jpg", ".png")}


def same_bytes(a: Path, b: Path) -> tuple[bool, str]:
    """Whether two output folders hold the same files with the same bytes."""
    files = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    others = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    differ = sorted(str(k) for k in files.keys() | others.keys() if files.get(k) != others.get(k))
    return not differ, f"{len(files)} files identical" if not differ else f"{len(differ)} files differ: {differ[0]}"


def compare(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], tool: str,
            precision: str) -> tuple[bool, str]:
    """Whether ``got`` matches the CPU's ``reference`` within ``TOLERANCE``, and a short account of the worst frame."""
    if set(got) != set(reference):
        missing = sorted(set(reference) - set(got))[:3]
        return False, f"frames differ: missing {missing}, extra {sorted(set(got) - set(reference))[:3]}"
    if tool == "schp":
        worst = max((float(np.mean((a > 127) != (b > 127))) for a, b in
                     ((reference[k], got[k]) for k in reference)), default=0.0)
        return worst <= SCHP_TOLERANCE[precision], f"mask differs at {worst:.2%} of pixels"
    mean, far = 0.0, 0.0
    for key, want in reference.items():
        diff = np.abs(want.astype(np.int16) - got[key].astype(np.int16))
        mean, far = max(mean, float(diff.mean())), max(far, float(np.mean(diff > 32)))
    limit_mean, limit_far = TOLERANCE[precision]
    return mean <= limit_mean and far <= limit_far, f"mean |diff| {mean:.2f} levels, {far:.2%} > 32"


def run_tool(tool: str, root: Path, weights: Path, device: str, mask_dir: str, fp16: bool = False,
             decode: str = "host", batch: int | str | None = "default", measure_model: bool = True,
             inject_oom: bool = False, cuda_graphs: bool = True) -> Result:
    """One run of ``tool`` as the command line runs it (no cuDNN autotuning, pinned memory, the tool's defaults,
    CUDA graphs unless ``cuda_graphs`` is false), timed, then (``measure_model``) its forward passes replayed on
    tensors in memory (eagerly)."""
    import matting_workloads as work
    import torch

    from easyvolcap.inference import inference_session, pick_device
    from easyvolcap.layout import DatasetLayout

    dev = pick_device(device)  # indexed, as the tools have it
    torch.backends.cudnn.benchmark = False  # as the tools run (cli.running.prepare_device)
    dtype = torch.float16 if fp16 and dev.type == "cuda" else torch.float32
    variant = MODELS[tool][0]
    model = work.load_model(tool, variant, weights, dev).to(dtype)
    layout = DatasetLayout.discover(root)
    batch = work.default_batch(tool) if batch == "default" else batch
    tool_fn = work.WORKLOADS[tool]["tool"]
    result = Result(tool, "", "")
    hook = model.register_forward_pre_hook(_oom_once(tool)) if inject_oom else None
    try:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        start = time.perf_counter()
        report = tool_fn(layout, model, dev, batch, mask_dir, 4, decode, dtype, cuda_graphs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            result.cuda_peak = torch.cuda.max_memory_allocated(dev)
        seconds = time.perf_counter() - start
    finally:
        if hook is not None:
            hook.remove()
    result.ips = layout.num_frames / seconds
    result.batch = work._batch_text(report)
    if report.batch_lowered:
        result.notes.append(f"back-off to {min(report.batch_lowered.values())}")
    if measure_model:
        with inference_session(model, dev):
            calls = work.record_passes(model, lambda: tool_fn(layout, model, dev, batch, f"{mask_dir}_rec", 4, decode,
                                                              dtype, False))
            result.model_ips = layout.num_frames / work.replay(model, calls, dev)
    return result


def _oom_once(tool: str):
    """A forward pre-hook raising one CPU stand-in for a CUDA out-of-memory error on the first pass of more than one
    image (the back-off's path, where no device memory can be capped)."""
    import torch

    fired = []

    def hook(module, args):
        images = args[0].shape[1] if tool == "rvm" else args[0].shape[0]
        if images > 1 and not fired:
            fired.append(images)
            raise torch.OutOfMemoryError("CUDA out of memory (injected by bench/cuda_check.py)")
    return hook


def synthesize(folder: Path, tool: str) -> Path:
    """The synthesized checkpoint of the tool's default model (written once)."""
    from batch_sweep import synthesized_checkpoint

    return synthesized_checkpoint(folder, MODELS[tool][1])


def configs(device: str, tool: str, devices: int) -> list[tuple[str, dict]]:
    """The runs of ``tool`` on the device under test: name and keyword arguments of :func:`run_tool`."""
    out = [("fp32", {})]
    if device.startswith("cuda"):
        out += [("fp32 no cuda graphs", {"cuda_graphs": False}), ("fp16", {"fp16": True})]
        if tool != "schp":
            out += [("fp32 decode gpu", {"decode": "device"}), ("fp16 decode gpu", {"fp16": True, "decode": "device"})]
        if devices >= 2:
            out.append(("fp32 2 workers", {"workers": True}))
    return out


def two_workers(tool: str, root: Path, weights: Path, mask_dir: str) -> Result:
    """The command line with ``--device cuda:0,cuda:1`` (one worker process per device)."""
    script = {"rvm": "inference_robust_video_matting.py", "bgmv2": "inference_bkgdmattev2.py",
              "schp": "inference_schp.py"}[tool]
    argv = [sys.executable, str(Path(__file__).resolve().parent.parent / "scripts" / "segmentation" / script),
            "--data_root", str(root), "--device", "cuda:0,cuda:1", "--mask_dir", mask_dir, "--no_preview"]
    argv += {"rvm": ["--variant", MODELS["rvm"][0], "--chkpt_path", str(weights)],
             "bgmv2": ["--chkpt_path", str(weights)],
             "schp": ["--dataset", "lip", "--detector", "none", "--chkpt_path", str(weights),
                      "--schp_dir", f"{mask_dir}_schp"]}[tool]
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    result = Result(tool, "", "")
    if out.returncode:
        result.ok, result.check = False, (out.stderr.strip().splitlines() or ["failed"])[-1][:100]
        return result
    result.ips = len(read_masks(root / mask_dir)) / (time.perf_counter() - start)  # with process start-up
    result.batch = "cli"
    return result


def forced_backoff(tool: str, root: Path, weights: Path, device: str, mask_dir: str, one_image_peak: int | None,
                   fp32_batch: str) -> Result:
    """A run whose first passes run out of memory: on CUDA 4x the batch under a memory cap just above a
    one-image pass's peak; on the CPU an injected error. It must complete, lowered."""
    import torch

    batch = 4 * max(int("".join(ch for ch in fp32_batch.split("-")[-1] if ch.isdigit()) or 1), 1)
    if device.startswith("cuda"):
        from easyvolcap.inference import pick_device

        dev = pick_device(device)  # set_per_process_memory_fraction needs the device's index
        total = torch.cuda.get_device_properties(dev).total_memory
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, 1.3 * (one_image_peak or total) / total), dev)
        try:
            result = run_tool(tool, root, weights, device, mask_dir, batch=batch, measure_model=False)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, dev)
            torch.cuda.empty_cache()
    else:
        result = run_tool(tool, root, weights, device, mask_dir, batch=batch, measure_model=False, inject_oom=True)
    if not any(note.startswith("back-off") for note in result.notes):
        result.ok, result.check = False, f"batch {batch} never ran out of memory: no back-off"
    return result


def check(sizes: list[str], device: str, cameras: int, frames: dict[str, int], tools: list[str], workdir: Path,
          echo=print) -> list[Result]:
    """Everything, size by size and tool by tool; the results in table order."""
    import torch

    devices = torch.cuda.device_count() if device.startswith("cuda") else 0
    results: list[Result] = []
    for size_name in sizes:
        root = make_dataset(workdir / size_name, SIZES[size_name], cameras, frames[size_name])
        for tool in tools:
            weights = synthesize(workdir, tool)
            run_tool(tool, root, weights, "cpu", "ref_cpu", measure_model=False)
            reference = read_masks(root / "ref_cpu")
            one_image = run_tool(tool, root, weights, device, "one_image", batch=1, measure_model=False) \
                if device.startswith("cuda") else None
            for name, kwargs in configs(device, tool, devices):
                mask_dir = f"out_{name.replace(' ', '_')}"
                if kwargs.pop("workers", False):
                    result = two_workers(tool, root, weights, mask_dir)
                else:
                    result = run_tool(tool, root, weights, device, mask_dir, **kwargs)
                result.size, result.config = size_name, name
                if result.ok:
                    result.ok, result.check = compare(reference, read_masks(root / mask_dir), tool, name[:4])
                results.append(result)
                echo(format_result(result))
            if (root / "out_fp32_no_cuda_graphs").is_dir():  # graphs must not change a byte
                result = Result(tool, size_name, "graphs vs no graphs")
                result.ok, result.check = same_bytes(root / "out_fp32", root / "out_fp32_no_cuda_graphs")
                results.append(result)
                echo(format_result(result))
            fp32_batch = next(r.batch for r in results if r.tool == tool and r.size == size_name)
            result = forced_backoff(tool, root, weights, device, "out_backoff", one_image and one_image.cuda_peak,
                                    fp32_batch)
            result.size, result.config = size_name, "forced out-of-memory"
            if result.ok:
                result.ok, result.check = compare(reference, read_masks(root / "out_backoff"), tool, "fp32")
            results.append(result)
            echo(format_result(result))
    return results


HEADER = (f"{'tool':<6} {'size':<6} {'run':<22} {'batch':<10} {'img/s':>8} {'model img/s':>11} {'eff':>5} "
          f"{'CUDA peak':>10}  check")


def format_result(r: Result) -> str:
    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"
    eff = None if not (r.ips and r.model_ips) else r.ips / r.model_ips
    peak = "-" if r.cuda_peak is None else f"{r.cuda_peak / 2**20:.0f}MB"
    verdict = "ok" if r.ok else "FAILED"
    notes = f" ({', '.join(r.notes)})" if r.notes else ""
    return (f"{r.tool:<6} {r.size:<6} {r.config:<22} {r.batch:<10} {num(r.ips):>8} {num(r.model_ips):>11} "
            f"{num(eff):>5} {peak:>10}  {verdict}: {r.check}{notes}")


def table(results: list[Result]) -> str:
    """The whole table, header first."""
    return "\n".join([HEADER, *(format_result(r) for r in results)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cuda", help="the device under test (cpu: the logic alone)")
    parser.add_argument("--sizes", nargs="+", default=["1080p", "4K"], choices=list(SIZES))
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8, help="frames per camera (4K: half)")
    parser.add_argument("--tools", nargs="+", default=["rvm", "bgmv2", "schp"], choices=list(MODELS))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("cuda_check: no CUDA device here; pass --device cpu to run the logic on the CPU", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device under test: {args.device} ({name}); reference: cpu; tolerance {TOLERANCE} (SCHP {SCHP_TOLERANCE})")
    print(HEADER)
    frames = {size: max(1, args.frames // 2) if size == "4K" else args.frames for size in SIZES}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cuda-check-") as tmp:
        results = check(args.sizes, args.device, args.cameras, frames, args.tools, Path(tmp),
                        echo=lambda line: print(line, flush=True))
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results)} runs in {time.perf_counter() - start:.0f} s; "
          + (f"{len(failed)} FAILED" if failed else "all within tolerance"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
