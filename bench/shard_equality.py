"""Same bytes in every process: one run of a tool against two shards of it, each a fresh process, file by file.

    python bench/shard_equality.py --device cuda               # RVM, BGMv2 and SCHP at 1080p on the GPU
    python bench/shard_equality.py --device cpu --size 48 64   # the logic, on the CPU (what the tests run)

For each tool (at its defaults, with synthesized weights of its default model; SCHP with ``--detector none``) it
writes the masks of 4 cameras once in one process, then again as ``--shard 0/2`` and ``--shard 1/2`` in two
other processes, and compares the sha256 of every file. Autotuning that picked other algorithms in another
process, or batches that depended on what else a run holds, would show here as differing files. Exits 1 when a
file differs or is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from tool_inputs import TOOLS, make_dataset, synthesize, tool_argv


def run(tool: str, paths: dict[str, Path], device: str, out: str, shard: str | None) -> None:
    argv = tool_argv(tool, paths["data"], paths[tool], device, out)
    subprocess.run([*argv, "--shard", shard] if shard else argv, check=True, capture_output=True, text=True)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def compare(tool: str, paths: dict[str, Path], device: str) -> tuple[int, list[str]]:
    """The number of files one run wrote, and those the two shards wrote otherwise (or not at all)."""
    data = paths["data"]
    run(tool, paths, device, f"{tool}_one", None)
    for shard in ("0/2", "1/2"):
        run(tool, paths, device, f"{tool}_shards", shard)
    one, shards = digests(data / f"{tool}_one"), digests(data / f"{tool}_shards")
    differ = sorted(name for name in one.keys() | shards.keys() if one.get(name) != shards.get(name))
    return len(one), differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="shard-equality-") as folder:
        paths = {"data": make_dataset(Path(folder) / "data", tuple(args.size), args.cameras, args.frames),
                 **synthesize(Path(folder))}
        print(f"| tool ({args.device}, {args.size[1]}x{args.size[0]}, {args.cameras} cameras x {args.frames}) "
              f"| files | one run vs two shards |")
        print("| --- | ---: | --- |")
        for tool in args.tools:
            count, differ = compare(tool, paths, args.device)
            failed |= bool(differ) or count == 0
            verdict = "byte-identical" if not differ else f"{len(differ)} differ: {', '.join(differ[:3])}"
            print(f"| {tool} | {count} | {verdict} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
