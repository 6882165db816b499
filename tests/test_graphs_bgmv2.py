"""BGMv2 with captured passes: the coarse pass holds no operation a CUDA graph cannot capture, and evc-bgmv2
writes the same bytes replaying it (emulated graphs on the CPU) as without graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from easyvolcap.models.bgmv2 import BACKBONES, MattingRefine
from tests.conftest import bgmv2_scene
from tests.test_graphs import CountingGraphs, read_tree


@pytest.fixture
def scene(tmp_path) -> Path:
    """3 cameras x 7 lossless frames and each camera's background in bkgd/<camera>.png."""
    return bgmv2_scene(tmp_path, frames=7)


@pytest.mark.slow
def test_bgmv2_writes_the_same_bytes_replaying_graphs(scene, bgmv2_checkpoints, monkeypatch, capsys):
    """7 frames per camera in batches of 2, 2, 2 and 1. 48x64 batches of 2: camera 00's first warms up, its
    second is captured, the rest (its third, camera 01's three) replay; batches of 1: camera 00's warms up,
    camera 01's is captured; camera 02 (44x60 padded): the first warms up, the second is captured, the third
    replays, its batch of 1 warms up. Masks and foregrounds: every byte as without graphs."""
    from easyvolcap.cli.bgmv2 import main
    from easyvolcap.runners import bgmv2

    backend = CountingGraphs()
    monkeypatch.setattr(bgmv2, "graph_backend", lambda device, enabled: backend if enabled else None)

    def run(mask_dir: str, *extra: str) -> int:
        return main(["--data_root", str(scene), "--chkpt_path", str(bgmv2_checkpoints["pytorch_mobilenetv2"]),
                     "--device", "cpu", "--workers", "2", "--batch_size", "2", "--refine_sample_pixels", "640",
                     "--mask_ext", ".png", "--fgr_dir", f"{mask_dir}_fgr", "--mask_dir", mask_dir, "--no_preview",
                     *extra])

    assert run("eager", "--no_cuda_graphs") == 0
    assert backend.captures == 0  # the flag reaches the runner
    assert run("graphs") == 0
    assert backend.captures == 3 and backend.replays == 3 + 4 + 1  # checks of the captures, then replays
    assert "without a CUDA graph" not in capsys.readouterr().err
    eager, graphs = read_tree(scene / "eager"), read_tree(scene / "graphs")
    assert len(eager) == 21 and eager == graphs
    eager_fgr, graphs_fgr = read_tree(scene / "eager_fgr"), read_tree(scene / "graphs_fgr")
    assert len(eager_fgr) == 21 and eager_fgr == graphs_fgr


def meta_model(backbone: str) -> tuple[MattingRefine, torch.Tensor, torch.Tensor]:
    """The network and a batch of images on the meta device: shapes only, no values to read back."""
    with torch.device("meta"):
        return MattingRefine(backbone).eval(), torch.empty(2, 3, 64, 96), torch.empty(2, 3, 64, 96)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_coarse_pass_reads_no_value_back(backbone):
    """A graph captures the coarse pass only if no operation waits for the device or sizes its output by the
    values (``nonzero``, ``.item()``, ``.cpu()``, a tensor's truth value): on the meta device these raise."""
    model, src, bgr = meta_model(backbone)
    with torch.inference_mode():
        coarse = model.coarse(src, bgr, backbone_scale=0.25)
    assert [tuple(t.shape) for t in coarse] == [(2, 1, 16, 24), (2, 3, 16, 24), (2, 1, 16, 24), (2, 32, 16, 24),
                                                (2, 3, 16, 24)]
    assert all(t.is_meta for t in coarse)


@pytest.mark.parametrize("mode", ["sampling", "thresholding"])
def test_the_refiner_selecting_blocks_does_read_values_back(mode):
    """What the test above would catch: the refiner's block selection (``nonzero``) raises on the meta device."""
    model, src, bgr = meta_model("mobilenetv2")
    with torch.inference_mode():
        coarse = model.coarse(src, bgr)
        with pytest.raises(NotImplementedError, match="nonzero"):
            model.refine(src, bgr, coarse, refine_mode=mode, sample_pixels=320)


def test_a_refine_out_of_device_memory_drops_the_graphs(scene, bgmv2_checkpoints, monkeypatch, capsys):
    """Camera 00's third batch of 2 replays the graph its second captured, then its refiner runs out of device
    memory: the graph is dropped before the back-off retries the batch by halves, and the run completes."""
    from easyvolcap import graphs
    from easyvolcap.cli.bgmv2 import main
    from easyvolcap.runners import bgmv2

    monkeypatch.setattr(bgmv2, "graph_backend", lambda device, enabled: CountingGraphs() if enabled else None)
    released, release, refine, calls = [], graphs.GraphedForward.release, MattingRefine.refine, []

    def recorded_release(self):
        released.append(len(self.graphs))  # graphs held when dropped
        release(self)

    def refine_once_out_of_memory(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")
        return refine(self, *args, **kwargs)

    monkeypatch.setattr(graphs.GraphedForward, "release", recorded_release)
    monkeypatch.setattr(MattingRefine, "refine", refine_once_out_of_memory)
    assert main(["--data_root", str(scene), "--chkpt_path", str(bgmv2_checkpoints["pytorch_mobilenetv2"]),
                 "--device", "cpu", "--workers", "2", "--batch_size", "2", "--only", "00", "--no_preview"]) == 0
    assert released == [1]
    assert "out of device memory: lowering the batch to 1" in capsys.readouterr().err
    assert len(list((scene / "bgmtv2" / "00").iterdir())) == 7
