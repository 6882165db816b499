"""Benchmark of the matting tools (RVM, BGMv2): end-to-end against model-only speed and a straightforward loop.

    python bench/matting.py                  # CPU defaults: mobilenet variants, 540p/1080p; a few minutes
    python bench/matting.py --quick          # smoke run: one small configuration per tool
    python bench/matting.py --resnet --4k    # also the ResNet variants and 3840x2160

For every configuration (tool, variant, resolution, cameras x frames) it prints the end-to-end rate of
the tool (the runner on a synthetic JPEG dataset on disk, writing JPEG masks), the model-only rate
(the same forward passes and batches on tensors already in memory, nothing written), their ratio
(efficiency), the rate of the straightforward loop (read a batch one image after the other, run it,
write its masks one after the other, as EasyVolcap's scripts do) and the tool's speed-up over it, and
the peak memory of each. Every measurement runs in a fresh process, so its peak RSS is its own.
Weights are synthesized from the official key layouts (``tests/parity/*.keys.json``), the same every
run. On the CPU it also measures the model with ``torch.set_flush_denormal(True)``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

PARITY = Path(__file__).resolve().parent.parent / "tests" / "parity"
WORKLOADS = Path(__file__).resolve().parent / "matting_workloads.py"
RESOLUTIONS = {"540p": (540, 960), "1080p": (1080, 1920), "4K": (2160, 3840)}
SPECS = {("rvm", "mobilenetv3"): "rvm_mobilenetv3", ("rvm", "resnet50"): "rvm_resnet50",
         ("bgmv2", "mobilenetv2"): "bgmv2_mobilenetv2", ("bgmv2", "resnet50"): "bgmv2_resnet50",
         ("bgmv2", "resnet101"): "bgmv2_resnet101"}
MASK_DIR = "bench_masks"
BUSY = 0.1  # CPU seconds per second used by other processes above which a row is marked


@dataclass(frozen=True)
class Case:
    """One configuration: which rows of the table it belongs to and what it runs."""

    group: str  # main, resolution, cameras, frames
    tool: str
    variant: str
    resolution: str
    cameras: int
    frames: int  # per camera
    batch: int
    loop: bool = True  # also measure the straightforward loop


def plan(args: argparse.Namespace) -> list[Case]:
    """The configurations of this run."""
    variants = {"rvm": ["mobilenetv3"], "bgmv2": ["mobilenetv2"]}
    if args.resnet:
        variants = {"rvm": ["mobilenetv3", "resnet50"], "bgmv2": ["mobilenetv2", "resnet50", "resnet101"]}
    batch = {"rvm": args.rvm_batch, "bgmv2": args.bgmv2_batch}
    if args.quick:
        return [Case("main", tool, variants[tool][0], "540p", 1, 8, batch[tool]) for tool in ("rvm", "bgmv2")]
    n = args.frames
    cases = []
    for tool in ("rvm", "bgmv2"):
        cases += [Case("main", tool, variant, "1080p", 2, n, batch[tool]) for variant in variants[tool]]
        first = variants[tool][0]
        cases.append(Case("resolution", tool, first, "540p", 2, n, batch[tool]))
        if args.four_k:
            cases.append(Case("resolution", tool, first, "4K", 2, max(1, n // 4), batch[tool]))
        cases += [Case("cameras", tool, first, "540p", cams, n, batch[tool], loop=False) for cams in (1, 4)]
        cases.append(Case("frames", tool, first, "540p", 1, 4 * n, batch[tool], loop=False))
    return cases


def make_dataset(root: Path, resolution: str, cameras: int, frames: int) -> Path:
    """``cameras`` x ``frames`` JPEG frames of the demo scene and each camera's background."""
    from easyvolcap.demo import background, make_demo_dataset
    from easyvolcap.image_io import write_image

    if not root.exists():
        size = RESOLUTIONS[resolution]
        make_demo_dataset(root, cameras, frames, size, odd_size=None, ext=".jpg")
        for c in range(cameras):
            write_image(root / "bkgd" / f"{c:02d}.png", background(*size, seed=c))
    return root


def make_weights(folder: Path, tool: str, variant: str) -> Path:
    """The synthesized checkpoint of ``tool``/``variant`` (deterministic), saved once per run."""
    from easyvolcap.synthetic import load_spec, synth_state_dict

    path = folder / f"{SPECS[tool, variant]}.pth"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(synth_state_dict(load_spec(PARITY / f"{SPECS[tool, variant]}.keys.json")), path)
    return path


def measure(mode: str, case: Case, root: Path, weights: Path, args: argparse.Namespace,
            flush_denormal: bool = False, tuning: str = "tool") -> dict:
    """One measurement in a fresh process; the best of ``args.repeat`` runs."""
    spec = {"mode": mode, "tool": case.tool, "variant": case.variant, "root": str(root), "weights": str(weights),
            "batch": case.batch, "device": args.device, "workers": args.workers, "mask_dir": MASK_DIR,
            "flush_denormal": flush_denormal, "tuning": tuning}
    best = None
    for _ in range(args.repeat):
        for _attempt in range(1 + args.retries):  # a run disturbed by other processes is run again
            wait_for_quiet(args.quiet_timeout)
            shutil.rmtree(root / MASK_DIR, ignore_errors=True)
            out = subprocess.run([sys.executable, str(WORKLOADS), json.dumps(spec)], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{mode} {case}: failed\n{out.stderr}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result["others_per_s"] <= BUSY:
                break
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    return best


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot; 0 where /proc is missing."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(timeout: float, window: float = 1.0) -> None:
    """Wait (up to ``timeout`` seconds) until other processes use less than ``BUSY`` CPU over ``window``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = _busy_seconds()
        time.sleep(window)
        if (_busy_seconds() - before) / window < BUSY:
            return


def run_case(case: Case, tmp: Path, args: argparse.Namespace) -> dict:
    root = make_dataset(tmp / f"{case.resolution}_{case.cameras}x{case.frames}", case.resolution,
                        case.cameras, case.frames)
    weights = make_weights(tmp / "weights", case.tool, case.variant)
    tool, model = (measure(mode, case, root, weights, args) for mode in ("tool", "model"))
    loop = measure("loop", case, root, weights, args) if case.loop else None
    images = tool["images"]
    return {"bench": "matting", **case.__dict__, "device": tool["device"], "images": images,
            "tool_ips": images / tool["seconds"], "model_ips": images / model["seconds"],
            "efficiency": model["seconds"] / tool["seconds"],
            "loop_ips": images / loop["seconds"] if loop else None,
            "speedup": loop["seconds"] / tool["seconds"] if loop else None,
            "tool_rss": tool["peak_rss"], "loop_rss": loop["peak_rss"] if loop else None,
            "tool_cuda": tool["cuda_peak"], "tool_cpu": tool["cpu_per_s"],
            "busy": max(m["others_per_s"] for m in (tool, model, loop) if m)}


def tuning_rows(cases: list[Case], tmp: Path, args: argparse.Namespace) -> list[dict]:
    """Model-only rate of each main configuration without the tools' CPU tuning, with part of it, with all of
    it (as the tools run), and with all of it plus flush-to-zero of denormals."""
    rows = []
    for case in (c for c in cases if c.group == "main"):
        root = make_dataset(tmp / f"{case.resolution}_{case.cameras}x{case.frames}", case.resolution,
                            case.cameras, case.frames)
        weights = make_weights(tmp / "weights", case.tool, case.variant)
        runs = {name: measure("model", case, root, weights, args, **extra) for name, extra in (
            ("none", {"tuning": "none"}), ("nhwc", {"tuning": "nhwc"}), ("tool", {}),
            ("flush", {"flush_denormal": True}))}
        rows.append({"bench": "tuning", **case.__dict__, "busy": max(r["others_per_s"] for r in runs.values()),
                     **{f"{name}_ips": r["images"] / r["seconds"] for name, r in runs.items()}})
    return rows


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}MB"


HEADER = (f"{'tool':<6} {'variant':<12} {'rows':<10} {'device':<6} {'size':<5} {'cams x fr':>9} {'batch':>5} "
          f"{'tool i/s':>8} {'model i/s':>9} {'eff':>5} {'loop i/s':>8} {'speed-up':>8} {'tool RSS':>8} "
          f"{'loop RSS':>8} {'CUDA peak':>9}")


def format_row(r: dict) -> str:
    """One matting row (a ``*`` marks a row measured while other processes kept the machine busy)."""
    mark = " *" if r["busy"] > BUSY else ""
    return (f"{r['tool']:<6} {r['variant']:<12} {r['group']:<10} {r['device'][:6]:<6} {r['resolution']:<5} "
            f"{r['cameras']:>4} x {r['frames']:<2} {r['batch']:>5} {r['tool_ips']:>8.2f} "
            f"{r['model_ips']:>9.2f} {r['efficiency']:>5.2f} {_num(r['loop_ips']):>8} {_num(r['speedup'], 'x'):>8} "
            f"{_mb(r['tool_rss']):>8} {_mb(r['loop_rss']):>8} {_mb(r['tool_cuda']):>9}{mark}")


TUNING_TITLE = ("\nmodel-only images/s on the CPU: plain NCHW weights and inputs (as the loop runs), channels-last, "
                "channels-last with malloc keeping freed blocks (the tools' inference_session), and that with "
                "torch.set_flush_denormal(True):")


def format_tuning(rows: list[dict]) -> str:
    lines = [f"{'tool':<6} {'variant':<12} {'size':<5} {'cams x fr':>9} {'NCHW i/s':>8} {'NHWC i/s':>8} "
             f"{'+malloc i/s':>11} {'tool gain':>9} {'+flush-denormal i/s':>19} {'flush gain':>10}"]
    for r in rows:
        mark = " *" if r["busy"] > BUSY else ""
        lines.append(f"{r['tool']:<6} {r['variant']:<12} {r['resolution']:<5} {r['cameras']:>4} x {r['frames']:<2} "
                     f"{r['none_ips']:>8.2f} {r['nhwc_ips']:>8.2f} {r['tool_ips']:>11.2f} "
                     f"{r['tool_ips'] / r['none_ips']:>8.2f}x {r['flush_ips']:>19.2f} "
                     f"{r['flush_ips'] / r['tool_ips']:>9.2f}x{mark}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: one small configuration per tool")
    parser.add_argument("--resnet", action="store_true", help="also RVM resnet50 and BGMv2 resnet50/resnet101")
    parser.add_argument("--4k", dest="four_k", action="store_true", help="also a 3840x2160 row per tool")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    parser.add_argument("--frames", type=int, default=16, help="frames per camera of the main and resolution rows")
    parser.add_argument("--rvm-batch", type=int, default=8, help="RVM images per forward pass")
    parser.add_argument("--bgmv2-batch", type=int, default=4, help="BGMv2 images per forward pass")
    parser.add_argument("--workers", type=int, default=4, help="the tools' --workers (decode/encode threads)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is kept")
    parser.add_argument("--retries", type=int, default=2,
                        help="runs again a measurement during which other processes kept the machine busy")
    parser.add_argument("--quiet-timeout", type=float, default=60,
                        help="seconds to wait for other processes to go quiet before each measurement")
    parser.add_argument("--no-tuning", dest="tuning", action="store_false",
                        help="skip the model-only measurements without the CPU tuning and with flush-denormal")
    return parser


def run(args: argparse.Namespace, echo=print) -> tuple[list[dict], list[dict]]:
    """Measure every configuration; ``echo`` gets each row as it is done. Returns (matting rows, tuning rows)."""
    cases = plan(args)
    rows: list[dict] = []
    echo(HEADER)
    with tempfile.TemporaryDirectory(prefix="bench-matting-") as tmp:
        for case in cases:
            rows.append(run_case(case, Path(tmp), args))
            echo(format_row(rows[-1]))
        tuning = tuning_rows(cases, Path(tmp), args) if args.tuning and args.device == "cpu" else []
    return rows, tuning


def notes(rows: list[dict]) -> str:
    text = (f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
            "rates in images/s; eff = tool / model-only; speed-up = tool over the straightforward loop")
    if any(r["busy"] > BUSY for r in rows):
        text += f"\n* other processes used more than {BUSY} CPU during this row: its numbers are not reliable"
    return text


def main() -> None:
    args = build_parser().parse_args()
    print(f"matting tools, synthetic JPEG datasets, device {args.device}")
    rows, tuning = run(args)
    print()
    print(notes(rows + tuning))
    if tuning:
        print(TUNING_TITLE)
        print(format_tuning(tuning))


if __name__ == "__main__":
    main()
