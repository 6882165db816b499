"""Speed and peak memory of each model's forward passes by batch size (what ``--batch_size auto`` is read from).

    python bench/batch_sweep.py                          # RVM, BGMv2, SCHP on the CPU; 540p, 1080p, 4K; batches 1-16
    python bench/batch_sweep.py --models rvm:resnet50 --sizes 1080p --batches 1 2 4 8
    python bench/batch_sweep.py --images 4 --batches 1 2 4   # shorter

Every point (model, image size, batch) runs in a fresh process: synthesized weights (the official key
layout, ``tests/parity``), one untimed pass, then passes over ``--images`` images (at least one
pass) on random frames already in memory, as the tools run them (``inference_session``: channels-last
on the CPU; RVM with ``auto`` downsample ratio and its recurrent state carried, BGMv2 with the tool's
refine settings, SCHP on 473x473 crops, whose size does not depend on the frame's). It reports the
model-only images/s, the process's peak RSS, the pass memory (the rise of the peak over the process
before the first pass: the float input and every activation) and the pass memory per image. The
last column marks the batch ``--batch_size auto`` picks on this machine (``easyvolcap.batching``) and
the fastest batch; the summary says how far auto is from the fastest. It ends with the table as
markdown rows for the readme.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARITY = Path(__file__).resolve().parent.parent / "tests" / "parity"
SIZES = {"540p": (540, 960), "1080p": (1080, 1920), "4K": (2160, 3840)}
KEYS = {"rvm:mobilenetv3": "rvm_mobilenetv3", "rvm:resnet50": "rvm_resnet50", "bgmv2:mobilenetv2": "bgmv2_mobilenetv2",
        "bgmv2:resnet50": "bgmv2_resnet50", "bgmv2:resnet101": "bgmv2_resnet101", "schp:lip": "schp_lip"}


def _peak_rss() -> int:
    """The process's peak resident memory in bytes (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    """Restart the peak (``VmHWM``) from the current RSS (Linux ``clear_refs`` 5); a no-op elsewhere."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def build_model(model_key: str, weights: Path):
    """The model of ``model_key`` (``tool:variant``) with the synthesized weights in ``weights``."""
    import torch

    tool, variant = model_key.split(":")
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    if tool == "rvm":
        from easyvolcap.models.rvm import MattingNetwork
        model = MattingNetwork(variant)
    elif tool == "bgmv2":
        from easyvolcap.models.bgmv2 import MattingRefine
        model = MattingRefine(variant)
    else:
        from easyvolcap.models.schp import label_set, schp_resnet101
        from easyvolcap.weights import clean_state_dict
        model = schp_resnet101(num_classes=label_set(variant).num_classes)
        state_dict = clean_state_dict(state_dict)
    model.load_state_dict(state_dict)
    return model.eval()


def make_passes(model_key: str, model, size: tuple[int, int], batch: int, images: int, device):
    """``(run_pass, passes)``: a function running one forward pass of ``batch`` images, and how many
    passes cover ``images`` images. RVM carries its recurrent state from pass to pass."""
    import torch

    from easyvolcap.inference import inference_session  # noqa: F401  (imported for the caller's session)

    tool = model_key.split(":")[0]
    generator = torch.Generator().manual_seed(0)
    if tool == "schp":
        size = (473, 473)
    src = torch.rand(batch, 3, *size, generator=generator).to(device)
    passes = max(1, -(-images // batch))
    if tool == "rvm":
        from easyvolcap.models.rvm.checkpoints import internal_scale

        ratio, state = internal_scale(size), [None] * 4
        clip = src[None]

        def run_pass(memory_format):
            nonlocal state
            x = clip.flatten(0, 1).contiguous(memory_format=memory_format).unflatten(0, clip.shape[:2])
            _, _, *state = model(x, *state, downsample_ratio=ratio)
    elif tool == "bgmv2":
        from easyvolcap.models.bgmv2.checkpoints import refine_settings
        from easyvolcap.runners.bgmv2 import Bgmv2Options

        options = Bgmv2Options()
        model.backbone_scale, model.refiner.sample_pixels = refine_settings(size, options.backbone_scale,
                                                                            options.refine_sample_pixels)
        bgr = src.flip(-1)

        def run_pass(memory_format):
            model(src.contiguous(memory_format=memory_format), bgr.contiguous(memory_format=memory_format))
    else:
        def run_pass(memory_format):
            model(src.contiguous(memory_format=memory_format))
    return run_pass, passes


def child(spec: dict) -> dict:
    """One point of the sweep, in this (fresh) process."""
    import torch

    from easyvolcap.inference import inference_session

    device = torch.device(spec["device"])
    model = build_model(spec["model"], Path(spec["weights"])).to(device)
    size, batch = tuple(spec["size"]), spec["batch"]
    import gc
    gc.collect()
    _reset_peak_rss()
    before = _peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), inference_session(model, device) as memory_format:
        run_pass, passes = make_passes(spec["model"], model, size, batch, spec["images"], device)
        run_pass(memory_format)  # untimed: kernels set up, the heap grown to its peak
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(passes):
            run_pass(memory_format)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    peak = _peak_rss()
    return {"ips": passes * batch / seconds, "peak_rss": peak, "pass_bytes": max(0, peak - before),
            "cuda_peak": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads()}


def weights_file(folder: Path, model_key: str) -> Path:
    """The synthesized checkpoint of ``model_key``, written once."""
    return synthesized_checkpoint(folder, KEYS[model_key])


def synthesized_checkpoint(folder: Path, keys: str) -> Path:
    """``<folder>/<keys>.pth``: the synthesized weights of ``tests/parity/<keys>.keys.json``, written once (in a
    child process: the caller stays small, and so does the peak RSS its children inherit)."""
    path = folder / f"{keys}.pth"
    if not path.exists():
        code = ("import sys, torch; from easyvolcap.synthetic.weights import load_spec, synth_state_dict; "
                "torch.save(synth_state_dict(load_spec(sys.argv[1])), sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(PARITY / f"{keys}.keys.json"), str(path)], check=True)
    return path


def auto_choice(model_key: str, size: tuple[int, int], device: str) -> int:
    """What ``--batch_size auto`` picks for ``model_key`` at ``size`` on ``device`` on this machine."""
    import torch

    from easyvolcap.batching import auto_batch_size
    from easyvolcap.models.bgmv2.checkpoints import DEFAULT_BACKBONE_SCALE
    from easyvolcap.models.bgmv2.checkpoints import PASS_COSTS as BGMV2_COSTS
    from easyvolcap.models.rvm.checkpoints import VARIANTS, internal_scale
    from easyvolcap.models.schp.checkpoints import crop_pass_cost

    tool, _, variant = model_key.partition(":")
    cost, scale = {"rvm": lambda: (VARIANTS[variant].cost, internal_scale(size)),
                   "bgmv2": lambda: (BGMV2_COSTS[variant], DEFAULT_BACKBONE_SCALE),
                   "schp": lambda: (crop_pass_cost((473, 473)), 1.0)}[tool]()
    return auto_batch_size(cost, size, scale, torch.device(device), torch.float32)


def sweep(models: list[str], sizes: list[str], batches: list[int], images: int, device: str,
          echo=print, folder: Path | None = None) -> list[dict]:
    """Every point, one child process each; rows with the auto choice and the fastest batch marked."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = folder or Path(tmp)
        for model_key in models:
            weights = weights_file(folder, model_key)
            for size_name in (["473 crop"] if model_key.startswith("schp") else sizes):
                size = SIZES.get(size_name, (473, 473))
                group = []
                for batch in batches:
                    spec = {"model": model_key, "size": size, "batch": batch, "images": max(images, batch),
                            "device": device, "weights": str(weights)}
                    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                         text=True)
                    if out.returncode:
                        result = {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
                    else:
                        result = json.loads(out.stdout.strip().splitlines()[-1])
                    group.append({"model": model_key, "size": size_name, "batch": batch, **result})
                    echo(format_row(group[-1]))
                mark(group, auto_choice(model_key, size, device))
                rows += group
    return rows


def mark(group: list[dict], auto: int) -> None:
    """Mark the fastest batch and the auto choice of one (model, size) group, and auto's rate against the best."""
    measured = [r for r in group if "ips" in r]
    best = max(measured, key=lambda r: r["ips"], default=None)
    for row in group:
        row["auto"], row["best"] = row["batch"] == auto, row is best
        row["auto_batch"] = auto
    chosen = next((r for r in measured if r["auto"]), None)
    if best and chosen:
        for row in group:
            row["auto_vs_best"] = chosen["ips"] / best["ips"]


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['model']:<18} {r['size']:<8} {r['batch']:>5}  failed: {r['error']}"
    flags = " ".join(name for name, on in (("auto", r.get("auto")), ("fastest", r.get("best"))) if on)
    return (f"{r['model']:<18} {r['size']:<8} {r['batch']:>5} {r['ips']:>8.2f} {r['peak_rss'] / 2**20:>8.0f} "
            f"{r['pass_bytes'] / 2**20:>9.0f} {r['pass_bytes'] / 2**20 / r['batch']:>9.0f}  {flags}")


HEADER = f"{'model':<18} {'size':<8} {'batch':>5} {'img/s':>8} {'peak MB':>8} {'pass MB':>9} {'MB/image':>9}"


def markdown(rows: list[dict], command: str) -> str:
    """The table as markdown rows, for the readme."""
    lines = [f"`{command}`:", "", "| model | size | batch | img/s | peak RSS | pass memory | per image | |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']} | {r['batch']} | failed | | | | |")
            continue
        flags = ", ".join(name for name, on in (("**auto**", r.get("auto")), ("fastest", r.get("best"))) if on)
        lines.append(f"| {r['model']} | {r['size']} | {r['batch']} | {r['ips']:.2f} | {r['peak_rss'] / 2**20:.0f} MB | "
                     f"{r['pass_bytes'] / 2**20:.0f} MB | {r['pass_bytes'] / 2**20 / r['batch']:.0f} MB | {flags} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Per (model, size): the auto batch, the fastest batch, and auto's rate as a fraction of the fastest."""
    lines, seen = [], set()
    for r in rows:
        key = (r["model"], r["size"])
        if key in seen or "auto_vs_best" not in r:
            continue
        seen.add(key)
        best = next(x for x in rows if (x["model"], x["size"]) == key and x.get("best"))
        in_sweep = any(x.get("auto") for x in rows if (x["model"], x["size"]) == key)
        lines.append(f"{r['model']:<18} {r['size']:<8} auto {r['auto_batch']:>3}, fastest {best['batch']:>3}: "
                     f"auto at {r['auto_vs_best']:.0%} of the fastest" + ("" if in_sweep else " (auto not swept)"))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["rvm:mobilenetv3", "rvm:resnet50", "bgmv2:mobilenetv2",
                                                       "bgmv2:resnet101", "schp:lip"], choices=sorted(KEYS))
    parser.add_argument("--sizes", nargs="+", default=["540p", "1080p", "4K"], choices=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--images", type=int, default=8, help="images timed per point (at least one pass)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"forward passes only, {os.cpu_count()} CPU cores, device {args.device}")
    print(HEADER)
    rows = sweep(args.models, args.sizes, args.batches, args.images, args.device)
    print()
    print(summary(rows))
    print()
    print(markdown(rows, "python " + " ".join(["bench/batch_sweep.py", *sys.argv[1:]])))


if __name__ == "__main__":
    main()
