"""The readme cannot drift: its "Try it offline" commands are run as pasted (parsed from readme.md), and every
tool command anywhere in it parses with that tool's flags."""

from __future__ import annotations

import csv
import importlib
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "readme.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def commands(block: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, split on ``&&``."""
    joined = block.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1:]
    return [words for words in found if words]


def console_scripts() -> dict[str, str]:
    """``evc-<tool>`` -> the module whose ``main`` it runs, from pyproject.toml."""
    block = (REPO / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n\n")[0]
    return dict(re.findall(r'^(evc-[\w-]+) = "([\w.]+):main"$', block, re.M))


def shims(folder: Path) -> Path:
    """``evc-*`` commands that run this checkout's code (the installed entry points may be another copy's)."""
    folder.mkdir()
    for name, module in console_scripts().items():
        path = folder / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from {module} import main; '
                        f'sys.exit(main())" "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.slow
def test_try_it_offline_runs_as_pasted(tmp_path):
    blocks = bash_blocks(section("Try it offline"))
    assert len(blocks) == 2 and all(words[0].startswith("evc-") or words[0] == "cp" for block in blocks
                                    for words in commands(block))
    env = {**os.environ, "PATH": f"{shims(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    work = tmp_path / "work"
    work.mkdir()
    for block in blocks:  # each block as one bash script, as a user pastes it
        done = subprocess.run(["bash", "-e", "-c", block], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (block, done.stdout, done.stderr)
    demo = work / "data" / "demo"
    for made in ("bkgd/00.png", "merged_mask/00/000000.png", "inv_maskes/00/000000.png", "masked.mp4",
                 "preview/bkgd.jpg", "preview/merged_mask.jpg"):
        assert (demo / made).is_file(), made
    ring = work / "data" / "ring"
    with open(ring / "check" / "gt_masks.csv") as handle:
        flagged = [(row["camera"], row["frame"], row["flag"]) for row in csv.DictReader(handle) if row["flag"]]
    assert flagged == [("03", "000005", "misaligned")]  # what the readme says the check finds
    assert len(list((ring / "fixed").rglob("*.png"))) == 48 and (ring / "preview" / "check_gt_masks.jpg").is_file()


def tool_commands() -> list[list[str]]:
    scripts = console_scripts()
    found = []
    for block in bash_blocks(README):
        for words in commands(block):
            if words[0] in scripts:
                found.append(words)
            elif words[:2] == ["python", "-m"] and words[2] == "easyvolcap.demo":
                found.append(["evc-demo", *words[3:]])
            elif words[0] == "python" and words[1].startswith("scripts/segmentation/"):
                found.append([words[1], *words[2:]])
    return found


SCRIPT_MODULES = {"inference_robust_video_matting.py": "easyvolcap.cli.rvm", "extract_backgrounds.py":
                  "easyvolcap.cli.backgrounds", "inference_bkgdmattev2.py": "easyvolcap.cli.bgmv2",
                  "inference_schp.py": "easyvolcap.cli.schp", "merge_schp_rvm_mask.py": "easyvolcap.cli.merge",
                  "invert_mask.py": "easyvolcap.cli.invert", "visualize_masked_images.py":
                  "easyvolcap.cli.visualize", "check_masks.py": "easyvolcap.cli.check"}


def test_every_tool_command_in_the_readme_parses():
    found = tool_commands()
    assert len(found) >= 25
    scripts = console_scripts()
    for words in found:
        name = words[0]
        module = scripts.get(name) or SCRIPT_MODULES[Path(name).name]
        argv = [word.replace("$DATA", "data/x") for word in words[1:]]
        parser = importlib.import_module(module).build_parser()
        parser.parse_args(argv)  # exits with a one-line error on a flag the tool does not have
