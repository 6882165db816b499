"""The fixed cost of a tool: from the command to the run's start and to the first mask written.

    python bench/startup.py                      # rvm, bgmv2 and schp on the CPU, 1 frame of 1080p, 3 runs each
    python bench/startup.py --tools rvm --device cuda --repeat 5

Each run is a fresh process (as a SLURM shard is) over a one-camera, one-frame 1080p dataset with synthesized
weights of the official layouts, at the tool's default flags (SCHP with ``--detector none``: torchvision's COCO
weights cannot be had offline). The process records when ``import torch`` returned, when the runner was entered
(the layout found, the device set up, the weights loaded) and when the first mask was written. The table gives
the median over the runs of:

- ``import torch``: what any PyTorch tool pays first;
- ``to run start``: after ``import torch``, until the runner starts (the issue's goal: 0.75 s on the CPU);
- ``to first mask``: after the run starts, until the first mask is on disk;
- ``process``: the whole command, interpreter start and exit included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tool_inputs import TOOLS, make_dataset, synthesize, tool_argv


def child(tool: str, argv: list[str]) -> None:
    """In a fresh process: run the tool and print the moments it reached, in seconds from the start."""
    start = time.perf_counter()
    import torch  # noqa: F401

    marks = {"torch": time.perf_counter() - start}
    import easyvolcap.image_io as image_io

    atomic_write = image_io.atomic_write  # what every output goes through

    def first_write(*args, **kwargs):
        result = atomic_write(*args, **kwargs)
        marks.setdefault("first", time.perf_counter() - start)
        return result

    image_io.atomic_write = first_write  # before any runner imports it
    import importlib

    runner = importlib.import_module(f"easyvolcap.runners.{tool}")
    run = getattr(runner, f"run_{tool}")

    def entered(*args, **kwargs):
        marks.setdefault("run", time.perf_counter() - start)
        return run(*args, **kwargs)

    setattr(runner, f"run_{tool}", entered)
    code = importlib.import_module(f"easyvolcap.cli.{tool}").main(argv)
    marks["end"] = time.perf_counter() - start
    print(json.dumps({"code": code, **marks}))


def measure(tool: str, paths: dict[str, Path], device: str, repeat: int) -> dict:
    """The median moments of ``repeat`` fresh processes."""
    runs = []
    for index in range(repeat):
        began = time.perf_counter()
        argv = tool_argv(tool, paths["data"], paths[tool], device, f"startup_{tool}_{index}")[2:]  # the flags
        out = subprocess.run([sys.executable, __file__, "--child", tool, json.dumps([*argv, "--overwrite"])],
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - began
        marks = json.loads(out.stdout.strip().splitlines()[-1])
        if marks["code"] != 0:
            raise SystemExit(f"{tool} failed: {out.stderr}")
        runs.append({"torch": marks["torch"], "to_run": marks["run"] - marks["torch"],
                     "to_first": marks["first"] - marks["run"], "process": wall})
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("argv", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.argv))
        return
    with tempfile.TemporaryDirectory() as folder:
        paths = {"data": make_dataset(Path(folder) / "data", (1080, 1920), cameras=1, frames=1),
                 **synthesize(Path(folder))}
        print(f"| tool ({args.device}, 1 frame 1080p, median of {args.repeat}) | import torch | to run start "
              f"| to first mask | process |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for tool in args.tools:
            r = measure(tool, paths, args.device, args.repeat)
            print(f"| {tool} | {r['torch']:.2f} s | {r['to_run']:.2f} s | {r['to_first']:.2f} s "
                  f"| {r['process']:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
