"""SCHP's parser passes as graphs (easyvolcap.graphs), on the CPU with emulated graphs: the same bytes as without,
parsed crops that outlive the next replay, and a captured pass that neither waits for the device nor depends on
the values it computes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from stubs import ColourParser
from test_graphs import CountingGraphs, read_tree
from torch import nn

from easyvolcap.cli.schp import main
from easyvolcap.detectors import Person
from easyvolcap.layout import DatasetLayout
from easyvolcap.models.schp import label_set, schp_resnet101
from easyvolcap.runners import schp
from easyvolcap.runners.schp import SchpOptions, SchpReport, run_schp
from easyvolcap.synthetic.capture import make_demo_dataset

TWO_PEOPLE = [Person((4.0, 6.0, 70.0, 90.0), 0.9), Person((50.0, 10.0, 125.0, 94.0), 0.8)]  # overlapping boxes


class TwoPeople:
    """A detector stand-in: the same two overlapping people in every frame."""

    def detect(self, images):
        return [list(TWO_PEOPLE) for _ in images]


def counting_backend(monkeypatch) -> CountingGraphs:
    """Emulated graphs wherever the runner would take CUDA graphs (not with ``--no_cuda_graphs``)."""
    backend = CountingGraphs()
    monkeypatch.setattr(schp, "graph_backend", lambda device, enabled: backend if enabled else None)
    return backend


@pytest.mark.slow
@pytest.mark.parametrize("logits", [False, True], ids=["default", "logits_dir"])
def test_evc_schp_writes_the_same_bytes_replaying_graphs(tmp_path, schp_checkpoints, monkeypatch, logits):
    """3 frames, each one person (the whole frame), one frame per detector pass: three passes of 1 crop
    (warm-up, capture, replay), every mask, label map (and logits) as without graphs; ``--no_cuda_graphs``
    captures nothing."""
    root = make_demo_dataset(tmp_path / "d", cameras=1, frames=3, odd_size=None)
    backend = counting_backend(monkeypatch)

    def run(name: str, *extra: str) -> dict[str, bytes]:
        dirs = {"--mask_dir": f"{name}_mask", "--schp_dir": f"{name}_schp"}
        if logits:
            dirs["--logits_dir"] = f"{name}_logits"
        assert main(["--data_root", str(root), "--chkpt_path", str(schp_checkpoints["lip"]), "--dataset", "lip",
                     "--detector", "none", "--device", "cpu", "--workers", "2", "--frames_per_batch", "1",
                     "--no_preview", *(a for pair in dirs.items() for a in pair), *extra]) == 0
        return {f"{d}/{k}": v for d in dirs.values() for k, v in read_tree(root / d).items()}

    eager = run("eager", "--no_cuda_graphs")
    assert backend.captures == 0
    graphs = run("graphs")
    assert (backend.captures, backend.replays) == (1, 2)  # the capture's check, then the third frame's pass
    assert len(eager) == 3 * (3 if logits else 2)
    assert [k.replace("eager", "graphs") for k in eager] == list(graphs)
    assert list(eager.values()) == list(graphs.values())


@pytest.mark.parametrize("logits_dir", [None, "logits"])
def test_run_schp_writes_the_same_bytes_replaying_graphs(tmp_path, monkeypatch, logits_dir):
    """As above with the stub parser (fast): 2 cameras x 5 frames of two people in detector passes of 2 frames:
    per camera passes of 4, 4 and 2 crops; 4 crops: warm-up, capture, 2 replays; 2 crops: warm-up, capture."""
    root = make_demo_dataset(tmp_path / "d", cameras=2, frames=5, odd_size=None, ext=".png")

    def run(name: str, backend: CountingGraphs | None) -> dict[str, bytes]:
        monkeypatch.setattr(schp, "graph_backend", lambda device, enabled: backend)
        options = SchpOptions(mask_dir=f"{name}_mask", schp_dir=f"{name}_schp", batch_size=4, frames_per_batch=2,
                              logits_dir=logits_dir and f"{name}_{logits_dir}")
        run_schp(DatasetLayout.discover(root), TwoPeople(), ColourParser(), label_set("cihp"),
                 torch.device("cpu"), torch.float32, options, progress=False)
        dirs = [options.mask_dir, options.schp_dir] + ([options.logits_dir] if logits_dir else [])
        return {f"{d.split('_', 1)[1]}/{k}": v for d in dirs for k, v in read_tree(root / d).items()}

    backend = CountingGraphs()
    graphs = run("graphs", backend)
    assert (backend.captures, backend.replays) == (2, 2 + 2)  # the captures' checks, then cam 01's 4-crop passes
    eager = run("eager", None)
    assert len(eager) == 10 * (3 if logits_dir else 2) and graphs == eager


def crop(bgr: tuple[int, int, int]) -> np.ndarray:
    """A letterboxed 473x473 BGR crop of one colour."""
    return np.broadcast_to(np.array(bgr, np.uint8), (473, 473, 3)).copy()


def parsing(device: torch.device, parser: nn.Module, options: SchpOptions | None = None) -> schp._Parsing:
    """The runner's parsing state alone (no dataset, detector or writer: ``_parse`` needs none)."""
    return schp._Parsing(None, None, parser, label_set("lip"), device, torch.float32, options or SchpOptions(), None,
                         SchpReport())


@pytest.mark.parametrize("logits_dir", [None, "logits"])
def test_parsed_crops_outlive_the_next_replay(monkeypatch, logits_dir):
    """A replay's outputs are static buffers: what ``_parse`` returns must not be them (on the CPU ``.cpu()``
    copies nothing), else the writer threads would restore crops overwritten by the next pass."""
    backend = counting_backend(monkeypatch)
    state = parsing(torch.device("cpu"), ColourParser(), SchpOptions(logits_dir=logits_dir))
    red, green = crop((20, 20, 230)), crop((20, 230, 20))
    state._parse([red, green])  # warm-up
    state._parse([red, green])  # capture
    first = state._parse([red, green])  # replayed
    kept = [[None if a is None else a.copy() for a in pair] for pair in first]
    second = state._parse([green, red])  # replayed into the same buffers
    assert backend.replays == 3
    for pair, copies in zip(first, kept, strict=True):
        assert (pair[1] is None) == (logits_dir is not None)
        for array, copy in zip(pair, copies, strict=True):
            assert array is None or np.array_equal(array, copy)
    assert not np.array_equal(kept[0][0], second[0][0])  # the next pass computed other logits


@pytest.fixture(scope="module")
def meta_parser() -> nn.Module:
    """The SCHP network on the meta device: shapes only, no data; reading a value raises."""
    with torch.device("meta"):
        return schp_resnet101(num_classes=20).eval()


def test_the_graphed_pass_neither_syncs_nor_depends_on_values(meta_parser):
    """The function the runner graphs runs whole on meta tensors: no ``.item()``, ``nonzero``, masking or copy
    to the host in it, none of which a CUDA graph can hold."""
    state = parsing(torch.device("meta"), meta_parser)
    with torch.inference_mode():
        fusion, logits = state.graphed.fn(torch.empty(2, 3, 473, 473, device="meta"))
    assert fusion.shape == (2, 20, 119, 119) and fusion.dtype == torch.float32
    assert logits.shape == (2, 20, 473, 473) and logits.is_meta


class Syncing(nn.Module):
    """A parser that reads a value of its output (as a pass that syncs would)."""

    def __init__(self, parser: nn.Module, read: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.parser, self.read = parser, read

    def forward(self, x: torch.Tensor):
        out = self.parser(x)
        self.read(out[0][-1])
        return out


@pytest.mark.parametrize("read", [lambda t: t.max().item(), lambda t: t.nonzero(), lambda t: t[t > 0],
                                  lambda t: t.cpu(), lambda t: bool(t.isnan().any())],
                         ids=["item", "nonzero", "masking", "cpu", "bool"])
def test_a_pass_that_syncs_raises_on_meta(meta_parser, read):
    """The check above can tell: the same harness raises on a pass that reads values."""
    state = parsing(torch.device("meta"), Syncing(meta_parser, read))
    with torch.inference_mode(), pytest.raises((RuntimeError, TypeError)):
        state.graphed.fn(torch.empty(2, 3, 473, 473, device="meta"))

