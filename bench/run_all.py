"""Every benchmark of the suite, then one combined table.

    python bench/run_all.py            # bench/backgrounds.py and bench/matting.py with their defaults
    python bench/run_all.py --quick    # smoke run: small images, few frames
    python bench/run_all.py --resnet --4k
    python bench/run_all.py --repeat 2     # the fastest of two runs per matting measurement (steadier)

Each benchmark prints its own table as it goes (and its notes); the combined table at the end has
one row per configuration: its rate, the model-only rate and efficiency where there is a model, the
baseline's rate (the peers users would run instead, see bench/matting.py; for background extraction,
loading every frame first), the speed-up over it, and peak memory. Then the same as markdown rows
for the readme, under the command that measured them.
"""

from __future__ import annotations

import argparse
import sys

import backgrounds
import matting


def combined(bkgd_rows: list[dict], matting_rows: list[dict]) -> str:
    """One table over both benchmarks."""
    def num(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:.2f}{unit}"

    def mb(value: float | None) -> str:
        return "-" if value is None else f"{value / 2**20:.0f}MB"

    rows = [("background", r["method"], "cpu", f"{r['width']}x{r['height']}", f"{r['cameras']} x {r['frames']}", "-",
             num(r["rate"]), "-", "-", num(r["baseline_rate"]), num(r["speedup"], "x"), mb(r["peak_rss"]),
             mb(r["baseline_rss"]), "-") for r in bkgd_rows]
    for r in matting_rows:
        peers = list(r["peers"].items()) or [(None, None)]
        for i, (name, peer) in enumerate(peers):
            tool = (r["tool"], f"{r['variant']} ({r['group']})", r["device"][:12], r["resolution"],
                    f"{r['cameras']} x {r['frames']}", r["batch_text"], num(r["tool_ips"]), num(r["model_ips"]),
                    num(r["efficiency"]))
            if i:
                tool = ("", "", "", "", "", "", "", "", "")
            rows.append((*tool, f"{matting.PEER_TITLES[name]} {num(peer['ips'])}" if peer else "-",
                         num(peer["speedup"], "x") if peer else "-", mb(r["tool_rss"]) if not i else "",
                         mb(peer["rss"]) if peer else "-",
                         (mb(r["tool_cuda"]) + (" *" if r["busy"] > matting.BUSY else "")) if not i else ""))
    head = ("tool", "variant / method", "device", "size", "cams x fr", "batch", "img/s", "model img/s", "eff",
            "baseline img/s", "speed-up", "peak RSS", "baseline RSS", "CUDA peak")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    left = {0, 1, 2, 3}
    return "\n".join(" ".join(str(cell).ljust(w) if i in left else str(cell).rjust(w)
                              for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in [head, *rows])


def background_markdown(rows: list[dict]) -> str:
    """The background rows as markdown for the readme."""
    out = ["| method | size | cameras x frames | img/s | load-everything img/s | speed-up | peak RSS | baseline RSS |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        speedup = f"{r['speedup']:.2f}x" if r["speedup"] else ""
        baseline = f"{r['baseline_rss'] / 2**20:.0f} MB" if r["baseline_rss"] else ""
        out.append(f"| {r['method']} | {r['width']}x{r['height']} | {r['cameras']} x {r['frames']} | {r['rate']:.1f} | "
                   f"{r['baseline_rate']:.1f} | {speedup} | {r['peak_rss'] / 2**20:.0f} MB | {baseline} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small images, few frames")
    parser.add_argument("--resnet", action="store_true", help="also the ResNet variants of the matting tools")
    parser.add_argument("--4k", dest="four_k", action="store_true", help="also 3840x2160 matting rows")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per matting measurement, the fastest kept (background rows: always 3)")
    args = parser.parse_args()

    bkgd_args = backgrounds.build_parser().parse_args(
        ["--rows", "1x10", "--height", "540", "--width", "960"] if args.quick else [])  # else its defaults
    bkgd_rows = backgrounds.run(bkgd_args.rows, bkgd_args.height, bkgd_args.width, repeat=bkgd_args.repeat)
    print()
    matting_args = matting.build_parser().parse_args(
        [flag for flag, on in (("--quick", args.quick), ("--resnet", args.resnet), ("--4k", args.four_k)) if on]
        + ["--repeat", str(args.repeat)])
    print("matting tools, synthetic JPEG datasets")
    matting_rows, tuning_rows = matting.run(matting_args)
    print()
    print(matting.notes(matting_rows + tuning_rows))
    if tuning_rows:
        print(matting.TUNING_TITLE)
        print(matting.format_tuning(tuning_rows))
    print("\nall benchmarks (baseline: load-everything for background extraction, the peers for matting)")
    print(combined(bkgd_rows, matting_rows))
    print()
    print(background_markdown(bkgd_rows))
    print()
    print(matting.markdown(matting_rows, "python " + " ".join(["bench/run_all.py", *sys.argv[1:]])))


if __name__ == "__main__":
    main()
