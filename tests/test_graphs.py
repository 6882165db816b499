"""Captured passes (easyvolcap.graphs): warm-up, capture, verification, replay, eviction and fallbacks, on the CPU
with emulated graphs; and the tools writing the same bytes with graphs as without."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from easyvolcap.graphs import EmulatedGraphs, GraphedForward, graph_backend


class CountingGraphs(EmulatedGraphs):
    """Emulated graphs that count their captures and replays."""

    def __init__(self) -> None:
        self.captures = self.replays = 0

    def capture(self, fn):
        self.captures += 1
        replay, outputs = super().capture(fn)

        def counted() -> None:
            self.replays += 1
            replay()

        return counted, outputs


def affine(x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 2.0) -> list[torch.Tensor]:
    out = x * scale + 1
    return [out if y is None else out + y, x.sum(dim=-1)]


def test_first_call_warms_up_the_second_captures_the_rest_replay():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend)
    for i in range(5):
        x = torch.full((2, 3), float(i))
        got = graphed(x)
        assert all(torch.equal(g, w) for g, w in zip(got, affine(x), strict=True)), i
    # eager: the warm-up and the check of the capture
    assert (graphed.stats.eager, graphed.stats.captured, graphed.stats.replayed) == (2, 1, 3)
    assert (backend.captures, backend.replays) == (1, 1 + 3)  # the capture's replay is checked, then 3 more


def test_replayed_outputs_are_static_buffers_overwritten_by_the_next_replay():
    graphed = GraphedForward(affine, EmulatedGraphs())
    for i in range(2):
        graphed(torch.full((2, 3), float(i)))
    first = graphed(torch.zeros(2, 3))[0]
    second = graphed(torch.ones(2, 3))[0]
    assert first is second and torch.equal(first, torch.full((2, 3), 3.0))


def test_shapes_dtypes_layouts_and_settings_each_have_their_own_graph():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend, max_graphs=8)
    calls = [torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, 2).t()]
    for x in calls:
        for _ in range(3):
            graphed(x)
            graphed(x, scale=3.0)
    assert backend.captures == 2 * len(calls) and graphed.stats.replayed == 2 * len(calls)


def test_least_recently_used_graph_is_dropped_beyond_max_graphs_and_needs_two_calls_again():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend, max_graphs=2)
    shapes = [(1, 3), (2, 3), (3, 3)]
    for shape in shapes:
        for _ in range(2):
            graphed(torch.zeros(shape))
    assert [key[0][0][0] for key in graphed.graphs] == shapes[1:]
    graphed(torch.zeros(shapes[0]))
    assert backend.captures == 3  # warm-up again, not a capture at once
    graphed(torch.zeros(shapes[0]))
    assert backend.captures == 4


def test_captures_stop_after_four_per_graph_kept():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend, max_graphs=1)
    for n in range(1, 8):  # a shape that keeps changing: each would be captured on its second call
        for _ in range(2):
            graphed(torch.zeros(n, 3))
    assert backend.captures == 4 and graphed.stats.captured == 4


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB"),
                                   RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR out of memory")])
def test_running_out_of_memory_drops_every_graph_for_the_back_off(error):
    def hungry(x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[0] > 4:
            raise error
        return [x + 1]

    graphed = GraphedForward(hungry, CountingGraphs())
    for _ in range(3):
        graphed(torch.zeros(2))
    assert len(graphed.graphs) == 1
    with pytest.raises(type(error)):
        graphed(torch.zeros(8))
    assert not graphed.graphs
    graphed(torch.zeros(2))
    assert not graphed.graphs and graphed.stats.captured == 1  # warmed up again first


def test_other_errors_keep_the_graphs():
    def picky(x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[0] > 4:
            raise RuntimeError("expected a tensor of 4 rows")
        return [x + 1]

    graphed = GraphedForward(picky, CountingGraphs())
    for _ in range(3):
        graphed(torch.zeros(2))
    with pytest.raises(RuntimeError, match="4 rows"):
        graphed(torch.zeros(8))
    assert len(graphed.graphs) == 1


def test_none_arguments_run_eagerly_and_warm_up_by_the_leading_arguments():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend, warm_args=1)
    x, y = torch.ones(2, 3), torch.full((2, 3), 5.0)
    graphed(x, None)  # like RVM's first clip of a camera: states None
    assert backend.captures == 0
    got = graphed(x, y)  # warmed up by the call above: captured at once
    assert backend.captures == 1 and torch.equal(got[0], affine(x, y)[0])
    graphed(x, None)
    assert graphed.stats.replayed == 0 and graphed.stats.eager == 3


def test_a_replay_that_differs_from_the_eager_pass_is_refused_once_and_said():
    calls = []

    def drifting(x: torch.Tensor) -> list[torch.Tensor]:
        calls.append(1)
        return [x + len(calls)]  # another result at every call: never equal to its own replay

    warnings = []
    graphed = GraphedForward(drifting, EmulatedGraphs(), warn=warnings.append)
    for _ in range(5):
        graphed(torch.zeros(2))
    assert graphed.stats.replayed == 0 and not graphed.graphs
    assert len(warnings) == 1 and "differs from the eager pass" in warnings[0] and "2" in warnings[0]
    assert list(graphed.stats.refused.values()) == ["its replay differs from the eager pass"]


def test_a_failed_capture_falls_back_to_the_eager_pass():
    class Refusing(EmulatedGraphs):
        def capture(self, fn):
            raise RuntimeError("operation not permitted when stream is capturing\nmore")

    warnings = []
    graphed = GraphedForward(affine, Refusing(), warn=warnings.append)
    results = [graphed(torch.full((2, 3), float(i)))[0] for i in range(4)]
    assert [r[0, 0].item() for r in results] == [1.0, 3.0, 5.0, 7.0]
    assert len(warnings) == 1 and "capture failed (operation not permitted when stream is capturing)" in warnings[0]


def test_an_emulated_capture_computes_nothing():
    replay, outputs = EmulatedGraphs().capture(lambda: affine(torch.ones(2, 3)))
    assert outputs[0].isnan().all()
    replay()
    assert torch.equal(outputs[0], torch.full((2, 3), 3.0))


def test_without_a_backend_every_call_is_eager():
    graphed = GraphedForward(affine, None)
    for _ in range(4):
        graphed(torch.zeros(2, 3))
    assert graphed.stats.eager == 4 and not graphed.graphs


def test_graphs_only_on_cuda_and_only_when_enabled():
    assert graph_backend(torch.device("cpu")) is None
    assert graph_backend(torch.device("cuda", 0), enabled=False) is None
    assert graph_backend(torch.device("cuda", 0)) is not None  # built without touching the device


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_rvm_writes_the_same_bytes_replaying_graphs(dataset, rvm_checkpoints, monkeypatch):
    """3 cameras x 5 frames in clips of 2, 2 and 1: per image size the first clip warms up, the second is
    captured; the next camera of that size starts from zero states and replays it (and captures the 1-frame
    clip, warmed up by the first camera's); every byte as without graphs."""
    from easyvolcap.cli.rvm import main
    from easyvolcap.runners import rvm

    def run(mask_dir: str) -> int:
        return main(["--data_root", str(dataset), "--variant", "mobilenetv3", "--workers", "2", "--device", "cpu",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"]), "--batch_size", "2",
                     "--mask_ext", ".png", "--fgr_dir", f"{mask_dir}_fgr", "--mask_dir", mask_dir])

    assert run("eager") == 0
    backend = CountingGraphs()
    monkeypatch.setattr(rvm, "graph_backend", lambda device, enabled: backend if enabled else None)
    assert run("graphs") == 0
    assert backend.captures == 3 and backend.replays == 3 + 2  # checks of the captures, then camera 01's clips
    eager, graphs = read_tree(dataset / "eager"), read_tree(dataset / "graphs")
    assert len(eager) == 15 and eager == graphs
    assert read_tree(dataset / "eager_fgr") == read_tree(dataset / "graphs_fgr")


def test_expanded_and_strided_arguments_get_buffers_they_can_be_copied_into():
    backend = CountingGraphs()
    graphed = GraphedForward(affine, backend)
    row = torch.arange(3.0).reshape(1, 3)
    for scale in (1.0, 2.0, 3.0):
        x = (row * scale).expand(4, 3)  # one camera's background repeated over a batch, say
        y = torch.ones(3, 4).t()  # a transposed view: its strides kept
        assert torch.equal(graphed(x, y)[0], affine(x, y)[0])
    assert backend.captures == 1 and graphed.stats.replayed == 1
    assert graphed.graphs[next(iter(graphed.graphs))].static[1].stride() == (1, 4)
