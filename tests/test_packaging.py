"""pyproject.toml says what the package needs: its runtime dependencies are exactly the third-party modules it
imports (optional ones in extras), and the tools CI runs are pinned."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = {"cv2": "opencv-python-headless", "PIL": "pillow", "imageio_ffmpeg": "imageio-ffmpeg"}
OPTIONAL = {"imageio_ffmpeg": "video", "detectron2": None}  # None: installed by hand (3rdparty/README.md)


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()


def imported_modules() -> set[str]:
    found = set()
    for path in (REPO / "easyvolcap").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"easyvolcap", "__future__"}


def test_runtime_dependencies_are_what_the_package_imports():
    modules = imported_modules()
    required = {DISTRIBUTIONS.get(m, m).lower() for m in modules - set(OPTIONAL)}
    assert {name(r) for r in project()["dependencies"]} == required
    extras = project()["optional-dependencies"]
    for module, extra in OPTIONAL.items():
        if module in modules and extra:
            assert DISTRIBUTIONS[module] in {name(r) for r in extras[extra]}


def test_ci_tools_are_pinned():
    dev = {name(r): r for r in project()["optional-dependencies"]["dev"]}
    assert re.fullmatch(r"ruff==[\d.]+", dev["ruff"]) and re.fullmatch(r"pytest==[\d.]+", dev["pytest"])
