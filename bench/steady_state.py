"""The tools' steady state at their default flags, against their model alone and EasyVolcap's scripts.

    python bench/steady_state.py --device cuda                      # 8 cameras x 400 frames of 1080p, each tool
    python bench/steady_state.py --device cuda --size 2160 3840 --cameras 4 --frames 24   # a 4K row
    python bench/steady_state.py --device cuda --cameras 1 --frames 100 --commands_only --eager_command
                                                                    # do CUDA graphs pay on 1 camera x 100 frames?
    python bench/steady_state.py --device cpu --size 48 64 --cameras 2 --frames 4 --unique 2   # the logic (tests)

The dataset is ``--cameras`` x ``--frames`` JPEG frames made by hard-linking ``--unique`` distinct ones (so a
long capture costs no disk), with a background per camera. For each tool and its default model (RVM resnet50,
BGMv2 resnet101, SCHP CIHP with ``--detector none``; synthesized weights of the official layouts, see
``bench/tool_inputs.py``):

- ``command``: the command line at its defaults in a fresh process over every frame; its rate is the one its
  summary line prints (the run, without the process's start-up; CUDA graphs' warm-up and capture included);
  with ``--eager_command`` also with ``--no_cuda_graphs``;
- ``tool`` / ``model only``: the runner on the first ``--model_frames`` frames of each camera, then exactly its
  forward passes replayed on tensors already on the device (``bench/matting_workloads.py``), eagerly and from
  CUDA graphs as the tool replays them (on the CPU emulated: no speed figure), with how many of the graphed
  passes equal the eager ones bit for bit; efficiency is the tool over the faster model-only rate (the goal
  on a GPU: 0.9), with the peak device memory of the tool's run (``--commands_only``: none of these);
- ``EasyVolcap``: its script, reimplemented from its documented behaviour (RVM, BGMv2), on the same frames.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tool_inputs import TOOLS, make_dataset, synthesize, tool_argv

BENCH = Path(__file__).resolve().parent
VARIANTS = {"rvm": "resnet50", "bgmv2": "resnet101", "schp": "lip"}  # as bench/matting_workloads.py names them
PEERS = {"rvm": "evc_rvm", "bgmv2": "evc_bgmv2"}


def subset(root: Path, out: Path, frames: int) -> Path:
    """The first ``frames`` frames of every camera of ``root``, hard-linked, with the backgrounds."""
    for camera in sorted((root / "images").iterdir()):
        (out / "images" / camera.name).mkdir(parents=True)
        for frame in sorted(camera.iterdir())[:frames]:
            os.link(frame, out / "images" / camera.name / frame.name)
    (out / "bkgd").mkdir()
    for background in (root / "bkgd").iterdir():
        os.link(background, out / "bkgd" / background.name)
    return out


def command_rate(tool: str, root: Path, weights: Path, device: str, *extra: str) -> float:
    """The rate the command line's summary prints, at its defaults (and ``extra`` flags), in a fresh process."""
    argv = [*tool_argv(tool, root, weights, device, f"cmd_{tool}{len(extra)}"), *extra]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"\(([\d.]+) img/s\)", out)[1])


def workload(spec: dict) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / "matting_workloads.py"), json.dumps(spec)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(tool: str, root: Path, sample: Path, weights: Path, device: str, eager_command: bool,
            commands_only: bool) -> dict:
    """One row: the command's rate (and without CUDA graphs), the tool's and the model's on ``sample`` (eager and
    graphed, and their agreement), the peer's."""
    row = {"tool": tool, "command": command_rate(tool, root, weights, device)}
    if eager_command:
        row["command_eager"] = command_rate(tool, root, weights, device, "--no_cuda_graphs")
    if commands_only:
        return row
    spec = {"tool": tool, "variant": VARIANTS[tool], "root": str(sample), "weights": str(weights),
            "batch": "default", "device": device, "workers": 4, "mask_dir": f"wl_{tool}", "decode": "host",
            "rounds": 1}
    measured = workload({**spec, "mode": "tool"})
    rate = {kind: measured[kind]["images"] / measured[kind]["seconds"] for kind in ("tool", "model", "model_graphs")}
    row |= {"tool_ips": rate["tool"], "model_ips": rate["model"], "model_graphs_ips": rate["model_graphs"],
            "agreement": measured["agreement"], "cuda_peak": measured["tool"].get("cuda_peak"),
            "batch": measured["tool"].get("batch_text", "")}
    if tool in PEERS:
        peer = workload({**spec, "mode": "peer", "peer": PEERS[tool], "mask_dir": f"peer_{tool}"})[PEERS[tool]]
        row["peer_ips"] = peer["images"] / peer["seconds"]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames", type=int, default=400, help="frames per camera")
    parser.add_argument("--unique", type=int, default=50, help="distinct frames per camera (the rest hard links)")
    parser.add_argument("--eager_command", action="store_true", help="also time the command with --no_cuda_graphs")
    parser.add_argument("--commands_only", action="store_true", help="time only the command lines")
    parser.add_argument("--model_frames", type=int, default=48,
                        help="frames per camera of the tool / model-only rows (the replay holds every input)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="steady-") as folder:
        folder = Path(folder)
        root = make_dataset(folder / "data", tuple(args.size), args.cameras, args.frames, args.unique)
        sample = subset(root, folder / "sample", min(args.model_frames, args.frames))
        weights = synthesize(folder)
        for line in table_head(args):
            print(line)
        for tool in args.tools:
            print(table_row(measure(tool, root, sample, weights[tool], args.device, args.eager_command,
                                    args.commands_only), args), flush=True)


def table_head(args: argparse.Namespace) -> list[str]:
    """The table's header lines for the columns ``args`` asks for."""
    columns = [f"tool ({args.device}, {args.size[1]}x{args.size[0]}, defaults)",
               f"command img/s ({args.cameras} x {args.frames})"]
    if args.eager_command:
        columns.append("command --no_cuda_graphs img/s")
    if not args.commands_only:
        columns += ["tool img/s", "model only img/s (eager)", "model only img/s (CUDA graphs)",
                    "graphed passes = eager", "efficiency", "EasyVolcap img/s", "peak device memory"]
    return ["| " + " | ".join(columns) + " |", "| --- |" + " ---: |" * (len(columns) - 1)]


def table_row(r: dict, args: argparse.Namespace) -> str:
    """One tool's row of :func:`table_head`'s table."""
    cells = [r["tool"] + (f" ({r['batch']})" if r.get("batch") else ""), f"{r['command']:.1f}"]
    if args.eager_command:
        cells.append(f"{r['command_eager']:.1f}")
    if not args.commands_only:
        graphs = f"{r['model_graphs_ips']:.1f}" if args.device.startswith("cuda") else "(emulated)"
        best = max(r["model_ips"], r["model_graphs_ips"] if args.device.startswith("cuda") else 0)
        agreement = r["agreement"]
        cells += [f"{r['tool_ips']:.1f}", f"{r['model_ips']:.1f}", graphs,
                  f"{agreement['equal']} of {agreement['passes']} (max diff {agreement['max_abs_diff']:.2g})",
                  f"{r['tool_ips'] / best:.2f}", f"{r['peer_ips']:.1f}" if "peer_ips" in r else "-",
                  f"{r['cuda_peak'] / 2**30:.1f} GB" if r["cuda_peak"] else "-"]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
