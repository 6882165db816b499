"""Benchmark of the inference tools (RVM, BGMv2, SCHP) as users run them, against what they would run instead.

    python bench/matting.py                  # CPU: mobilenet variants, SCHP LIP, 1080p and 540p, defaults vs peers
    python bench/matting.py --quick          # smoke run: one small configuration per tool and variant
    python bench/matting.py --resnet --4k    # also RVM resnet50 / BGMv2 resnet101 (the tools' default models) and 4K
    python bench/matting.py --scaling        # also rows of 1 and 4 cameras and 3x the frames
    python bench/matting.py --tuning         # also the model without the tools' CPU tuning
    python bench/matting.py --fp16           # on CUDA: the tools with --fp16 (the peers stay float32)
    python bench/matting.py --decode gpu     # on CUDA: JPEG frames decoded on the GPU (RVM, BGMv2)

Every tool row runs the tool with its defaults: only the weights file and the variant are given
(``--batch_size`` its default: auto for RVM and SCHP; SCHP as ``--detector none --dataset lip``, one person
per frame); a ``tuned`` row runs it with an explicit ``--batch_size`` (``--rvm-batch`` ...). Each row
gives the end-to-end rate of the tool on a synthetic JPEG dataset on disk, the model-only rate (exactly
the tool's forward passes, recorded, run again on tensors already in memory, nothing written), their
ratio (efficiency) and the peak memory, then each peer's rate, the tool's speed-up over it and the
peer's peak memory. The peers, reimplemented from their documented behaviour (see
``matting_workloads.py``): EasyVolcap's RVM script (all cameras of one frame per pass, ratio 0.25,
thread-pool reads and writes) and RVM's own ``convert_video`` (one camera at a time, ``seq_chunk`` 12,
PNG alpha sequence) for RVM; EasyVolcap's BGMv2 script (chunks of 64 frames through a thread pool, 8
per pass, the background converted once per camera); SCHP's ``simple_extractor`` (a frame at a time,
one warp per class). On CUDA the tools run as the command line runs them (cuDNN autotuning, pinned
memory, float16 with ``--fp16``) and the peak device memory is printed. With ``--tuning`` on the CPU it then
measures the model-only rate without the CPU tuning and with ``torch.set_flush_denormal(True)``.

Every measurement runs in a fresh process (``matting_workloads.py``, which says what is timed), so
its peak RSS (``ru_maxrss``) is its own: this process never imports torch, whose memory children
would otherwise inherit in ``ru_maxrss``. Rates are of the steady state: one-time setup is run
untimed first. Tool and model-only runs alternate within a process (two of each), so that a
machine whose speed drifts slows both alike; the peers get two timed runs too; the fastest of each
kind is kept (over ``--repeat`` processes too). The machine may be shared: each measurement waits
for other processes to go quiet and is run again if they were busy meanwhile (a ``*`` marks a row
they disturbed all the same). It ends with the rows as markdown for the readme, under the command.
Weights are synthesized from the official key layouts (``tests/parity/*.keys.json``), the same
every run.
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
from dataclasses import dataclass, fields, replace
from pathlib import Path

PARITY = Path(__file__).resolve().parent.parent / "tests" / "parity"
WORKLOADS = Path(__file__).resolve().parent / "matting_workloads.py"
RESOLUTIONS = {"540p": (540, 960), "1080p": (1080, 1920), "4K": (2160, 3840)}
SPECS = {("rvm", "mobilenetv3"): "rvm_mobilenetv3", ("rvm", "resnet50"): "rvm_resnet50",
         ("bgmv2", "mobilenetv2"): "bgmv2_mobilenetv2", ("bgmv2", "resnet50"): "bgmv2_resnet50",
         ("bgmv2", "resnet101"): "bgmv2_resnet101", ("schp", "lip"): "schp_lip"}
MASK_DIR = "bench_masks"
PEERS = {"rvm": ["evc_rvm", "rvm_convert_video"], "bgmv2": ["evc_bgmv2"], "schp": ["simple_extractor"]}
PEER_TITLES = {"evc_rvm": "EasyVolcap's RVM script", "rvm_convert_video": "RVM's convert_video",
               "evc_bgmv2": "EasyVolcap's BGMv2 script", "simple_extractor": "SCHP's simple_extractor"}
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
    batch: int | str  # "default": the tool's own --batch_size default (RVM, SCHP: auto)
    peers: bool = True  # also measure what a user would run instead (PEERS)


def plan(args: argparse.Namespace) -> list[Case]:
    """The configurations of this run: the tools with their defaults (only weights and variant given) against
    their peers, then tuned rows (an explicit batch) and scaling rows."""
    variants = {"rvm": ["mobilenetv3"], "bgmv2": ["mobilenetv2"], "schp": ["lip"]}
    if args.resnet:
        variants |= {"rvm": ["mobilenetv3", "resnet50"], "bgmv2": ["mobilenetv2", "resnet101"]}
    tuned = {"rvm": args.rvm_batch, "bgmv2": args.bgmv2_batch, "schp": args.schp_batch}
    tools = [tool for tool in ("rvm", "bgmv2", "schp") if tool in args.tools]
    if args.quick:
        return [Case("defaults", tool, variant, "540p", 1, 4, "default")
                for tool in tools for variant in variants[tool]]
    cases = []
    for tool in tools:
        n = args.frames if tool != "schp" else max(1, args.frames // 2)  # ResNet-101 on 473x473 crops: slow
        cases += [Case("defaults", tool, variant, "1080p", 2, n, "default") for variant in variants[tool]]
        first = variants[tool][0]
        cases.append(Case("defaults", tool, first, "540p", 2, n, "default"))
        if args.four_k:
            cases.append(Case("defaults", tool, first, "4K", 2, max(1, n // 4), "default"))
        if tuned[tool]:
            cases.append(Case("tuned", tool, first, "1080p", 2, n, tuned[tool], peers=False))
        if args.scaling:
            cases.append(Case("cameras", tool, first, "540p", 1, n, "default", peers=False))
            cases.append(Case("cameras", tool, first, "540p", 4, max(1, n // 2), "default", peers=False))
            cases.append(Case("frames", tool, first, "540p", 1, 3 * n, "default", peers=False))
    return cases


def make_dataset(root: Path, resolution: str, cameras: int, frames: int) -> Path:
    """``cameras`` x ``frames`` JPEG frames of the demo scene and each camera's background."""
    from easyvolcap.image_io import write_image
    from easyvolcap.synthetic.capture import background, make_demo_dataset

    if not root.exists():
        size = RESOLUTIONS[resolution]
        make_demo_dataset(root, cameras, frames, size, odd_size=None, ext=".jpg")
        for c in range(cameras):
            write_image(root / "bkgd" / f"{c:02d}.png", background(*size, seed=c))
    return root


def make_weights(folder: Path, tool: str, variant: str) -> Path:
    """The synthesized checkpoint of ``tool``/``variant`` (deterministic), saved once per run (in a child
    process: this one stays small, and so does the peak RSS its children inherit)."""
    path = folder / f"{SPECS[tool, variant]}.pth"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        spec = {"mode": "weights", "keys": str(PARITY / f"{SPECS[tool, variant]}.keys.json"), "out": str(path)}
        subprocess.run([sys.executable, str(WORKLOADS), json.dumps(spec)], check=True)
    return path


def measure(mode: str, case: Case, root: Path, weights: Path, args: argparse.Namespace,
            flush_denormal: bool = False, tuning: str = "tool", extra: dict | None = None) -> dict[str, dict]:
    """One workload in a fresh process (see ``matting_workloads.py``); per kind, the best of ``args.repeat``."""
    spec = {"mode": mode, "tool": case.tool, "variant": case.variant, "root": str(root), "weights": str(weights),
            "batch": case.batch, "device": args.device, "workers": args.workers, "mask_dir": MASK_DIR,
            "decode": {"auto": "auto", "cpu": "host", "gpu": "device"}[args.decode], "fp16": args.fp16,
            "flush_denormal": flush_denormal, "tuning": tuning, **(extra or {})}
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for _attempt in range(1 + args.retries):  # a run disturbed by other processes is run again
            wait_for_quiet(args.quiet_timeout)
            shutil.rmtree(root / MASK_DIR, ignore_errors=True)
            out = subprocess.run([sys.executable, str(WORKLOADS), json.dumps(spec)], capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{mode} {case}: failed\n{out.stderr}")
            results = timed(json.loads(out.stdout.strip().splitlines()[-1]))
            if all(r["others_per_s"] <= BUSY for r in results.values()):
                break
        for kind, result in results.items():
            if kind not in best or result["seconds"] < best[kind]["seconds"]:
                best[kind] = result
    return best


def timed(results: dict[str, dict]) -> dict[str, dict]:
    """The timed runs of a workload's results (those with seconds; not the graphs' agreement check)."""
    return {kind: result for kind, result in results.items() if "seconds" in result}


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot; 0 where /proc is missing."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def wait_for_quiet(timeout: float, window: float = 0.5) -> None:
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
    runs = measure("tool", case, root, weights, args)
    peers = {}
    if case.peers:
        for peer in PEERS[case.tool]:
            peers[peer] = measure("peer", case, root, weights, args, extra={"peer": peer})[peer]
    tool, model = runs["tool"], runs["model"]
    images = tool["images"]
    return {"bench": "matting", **case.__dict__, "device": tool["device"], "images": images,
            "batch_text": tool["batch_text"] + (" (default)" if case.batch == "default" and "auto" not in
                                                tool["batch_text"] else ""),
            "tool_ips": images / tool["seconds"], "model_ips": images / model["seconds"],
            "efficiency": model["seconds"] / tool["seconds"],
            "peers": {name: {"ips": images / r["seconds"], "speedup": r["seconds"] / tool["seconds"],
                             "rss": r["peak_rss"], "cuda": r["cuda_peak"]} for name, r in peers.items()},
            "tool_rss": tool["peak_rss"], "tool_cuda": tool["cuda_peak"], "tool_cpu": tool["cpu_per_s"],
            "torch": tool["torch"], "busy": max(r["others_per_s"] for r in [*runs.values(), *peers.values()])}


def tuning_rows(rows: list[dict], tmp: Path, args: argparse.Namespace) -> list[dict]:
    """Model-only rate of each main configuration as the tools run it, and with flush-to-zero of denormals;
    with ``--tuning`` also without the tools' CPU tuning (NCHW) and with channels-last only. One process each."""
    variants = [("tool", {}), ("flush", {"flush_denormal": True})]
    if args.tuning:
        variants = [("none", {"tuning": "none"}), ("nhwc", {"tuning": "nhwc"}), *variants]
    out = []
    for row in (r for r in rows if r["group"] == "defaults" and r["resolution"] == "1080p"):
        case = replace(Case(**{f.name: row[f.name] for f in fields(Case)}), cameras=1, peers=False)  # half the work
        root = make_dataset(tmp / f"{case.resolution}_{case.cameras}x{case.frames}", case.resolution,
                            case.cameras, case.frames)
        weights = make_weights(tmp / "weights", case.tool, case.variant)
        runs = {name: measure("model", case, root, weights, args, **extra)["model"] for name, extra in variants}
        out.append({"bench": "tuning", **case.__dict__, "busy": max(r["others_per_s"] for r in runs.values()),
                    **{f"{name}_ips": r["images"] / r["seconds"] for name, r in runs.items()}})
    return out


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}MB"


HEADER = (f"{'tool':<6} {'variant':<12} {'rows':<8} {'device':<6} {'size':<5} {'cams x fr':>9} {'batch':>10} "
          f"{'tool i/s':>8} {'model i/s':>9} {'eff':>5} {'tool RSS':>8} {'CUDA peak':>9}")


def format_row(r: dict) -> str:
    """One matting row, then one line per peer (a ``*`` marks a row measured while other processes kept the
    machine busy)."""
    mark = " *" if r["busy"] > BUSY else ""
    lines = [f"{r['tool']:<6} {r['variant']:<12} {r['group']:<8} {r['device'][:6]:<6} {r['resolution']:<5} "
             f"{r['cameras']:>4} x {r['frames']:<2} {r['batch_text']:>10} {r['tool_ips']:>8.2f} "
             f"{r['model_ips']:>9.2f} {r['efficiency']:>5.2f} {_mb(r['tool_rss']):>8} {_mb(r['tool_cuda']):>9}{mark}"]
    for name, peer in r["peers"].items():
        lines.append(f"{'':<6} vs {PEER_TITLES[name]:<28} {peer['ips']:>8.2f} img/s: tool {peer['speedup']:.2f}x, "
                     f"peer RSS {_mb(peer['rss'])} (tool {_mb(r['tool_rss'])})"
                     + (f", peer CUDA {_mb(peer['cuda'])}" if peer["cuda"] else ""))
    return "\n".join(lines)


def markdown(rows: list[dict], command: str) -> str:
    """The rows as a markdown table for the readme, the command that measured them above it."""
    out = [f"`{command}`:", "",
           "| tool | variant | size | cameras x frames | batch | tool img/s | model img/s | efficiency | peak RSS "
           "| peer | peer img/s | tool / peer | peer peak RSS |",
           "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        head = (f"| {r['tool']} | {r['variant']} | {r['resolution']} | {r['cameras']} x {r['frames']} | "
                f"{r['batch_text']} | {r['tool_ips']:.2f} | {r['model_ips']:.2f} | {r['efficiency']:.2f} | "
                f"{_mb(r['tool_rss'])}")
        if not r["peers"]:
            out.append(head + " | | | | |")
        for i, (name, peer) in enumerate(r["peers"].items()):
            first = head if i == 0 else "| | | | | | | | |"
            out.append(f"{first} | {PEER_TITLES[name]} | {peer['ips']:.2f} | {peer['speedup']:.2f}x | "
                       f"{_mb(peer['rss'])} |")
    return "\n".join(out)


def format_tuning(rows: list[dict]) -> str:
    """Model-only images/s under each CPU setting (``-``: not measured; ``--tuning`` measures them all)."""
    lines = [f"{'tool':<6} {'variant':<12} {'size':<5} {'cams x fr':>9} {'NCHW':>7} {'NHWC':>7} {'tool':>7} "
             f"{'gain':>6} {'+flush':>7} {'flush gain':>10}"]
    for r in rows:
        mark = " *" if r["busy"] > BUSY else ""
        none, nhwc = r.get("none_ips"), r.get("nhwc_ips")
        lines.append(f"{r['tool']:<6} {r['variant']:<12} {r['resolution']:<5} {r['cameras']:>4} x {r['frames']:<2} "
                     f"{_num(none):>7} {_num(nhwc):>7} {r['tool_ips']:>7.2f} "
                     f"{_num(none and r['tool_ips'] / none, 'x'):>6} {r['flush_ips']:>7.2f} "
                     f"{r['flush_ips'] / r['tool_ips']:>9.2f}x{mark}")
    return "\n".join(lines)


TUNING_TITLE = ("\nmodel-only images/s on the CPU, one process each: NCHW weights and inputs with glibc's default "
                "malloc, channels-last only, as the tools run (inference_session: channels-last, "
                "malloc keeping freed blocks; gain over NCHW), and that with torch.set_flush_denormal(True):")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one small configuration per tool and variant, no flush-denormal run")
    parser.add_argument("--resnet", action="store_true",
                        help="also RVM resnet50 and BGMv2 resnet101 (the tools' default models)")
    parser.add_argument("--4k", dest="four_k", action="store_true", help="also a 3840x2160 row per tool")
    parser.add_argument("--device", default="auto", help="cpu, cuda[:N], or auto: cuda when available")
    parser.add_argument("--frames", type=int, default=12, help="frames per camera of the 1080p and 540p rows")
    parser.add_argument("--rvm-batch", type=int, default=8, help="RVM --batch_size of the tuned row (0: none)")
    parser.add_argument("--bgmv2-batch", type=int, default=4, help="BGMv2 --batch_size of the tuned row (0: none)")
    parser.add_argument("--schp-batch", type=int, default=0, help="SCHP --batch_size of the tuned row (0: none)")
    parser.add_argument("--scaling", action="store_true", help="also rows of 1 and 4 cameras and of 3x the frames")
    parser.add_argument("--fp16", action="store_true", help="on CUDA: the tools with --fp16")
    parser.add_argument("--tools", nargs="+", default=["rvm", "bgmv2", "schp"], choices=["rvm", "bgmv2", "schp"],
                        help="which tools to measure")
    parser.add_argument("--workers", type=int, default=4, help="the tools' --workers (decode/encode threads)")
    parser.add_argument("--decode", default="auto", choices=("auto", "cpu", "gpu"),
                        help="the tools' --decode for RVM and BGMv2 (gpu: JPEG decoded on the CUDA device)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is kept")
    parser.add_argument("--retries", type=int, default=2,
                        help="runs again a measurement during which other processes kept the machine busy")
    parser.add_argument("--quiet-timeout", type=float, default=30,
                        help="seconds to wait for other processes to go quiet before each measurement")
    parser.add_argument("--tuning", action="store_true",
                        help="on the CPU also the model-only rate without the tools' CPU tuning, with channels-last "
                             "only, and with torch.set_flush_denormal(True)")
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
        on_cpu = all(r["device"] == "cpu" for r in rows)
        tuning = tuning_rows(rows, Path(tmp), args) if on_cpu and args.tuning else []
    return rows, tuning


def notes(rows: list[dict]) -> str:
    version, threads = rows[0]["torch"] if rows else ("?", "?")
    text = (f"{os.cpu_count()} CPU cores, torch {version}, {threads} intra-op threads; "
            "rates in images/s; eff = tool / model-only; tool / peer = the tool's rate over the peer's")
    if any(r["device"] != "cpu" for r in rows):
        text += ("\nmodel-only: eager passes; on a GPU the tool replays CUDA graphs, so eff may pass 1 "
                 "(bench/steady_state.py compares eager and graphed passes)")
    if any(r["busy"] > BUSY for r in rows):
        text += f"\n* other processes used more than {BUSY} CPU during this row: its numbers are not reliable"
    return text


def main() -> None:
    args = build_parser().parse_args()
    print("matting tools, synthetic JPEG datasets")
    rows, tuning = run(args)
    print()
    print(notes(rows + tuning))
    if tuning:
        print(TUNING_TITLE)
        print(format_tuning(tuning))
    print()
    print(markdown(rows, "python " + " ".join([sys.argv[0], *sys.argv[1:]])))


if __name__ == "__main__":
    main()
