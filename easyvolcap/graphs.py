"""A fixed-shape forward pass captured once and replayed: CUDA graphs, one per input shape and setting.

On a GPU our passes are bound by kernel launches, not arithmetic: a pass of RVM over 16 frames is about a
thousand small operations, each launched from Python. A CUDA graph records those launches once and replays
them with one call. :class:`GraphedForward` wraps a function of tensors and keeps one graph per *key* (the
shapes, dtypes and layouts of its tensor arguments, which of them are ``None``, and its settings):

- the first call of a key runs eagerly: it loads the kernels and allocates what capture must not
  (**warm-up**). Warm-up is counted by the leading ``warm_args`` arguments and the settings: RVM's first
  pass of a camera (recurrent states ``None``) warms up the passes that follow, whose states' shapes
  follow from the frames'. A call with an argument ``None`` always runs eagerly;
- the next call captures the pass into a graph with static input and output buffers, replays it, and
  checks the replay against an eager pass on the same inputs (**verification**). A key whose replay
  differs by a single bit, or whose capture fails (an operation that waits for the device, out of memory),
  runs eagerly from then on, said once: graphs never change what a tool writes, so a run, its shards and
  its resumption write the same bytes whichever passes replayed;
- later calls copy their inputs into the static buffers and replay.

The outputs of a replay are the graph's static buffers: they hold until the next call of the same key,
so the caller consumes (or copies) them before that. Each graph keeps the memory of one pass. At most
``max_graphs`` keys hold a graph; beyond that the least recently used one is dropped, with its memory, and
must be seen twice again to be captured again. After ``4 * max_graphs`` captures no new key is captured (a
run whose shapes keep changing would otherwise pay a capture for every few passes). A pass that runs out of
memory drops every graph first, so that the caller's out-of-memory back-off finds their memory free.

The capture mechanism is a :class:`GraphBackend`: :class:`CudaGraphs` on CUDA (the only lines that need a
GPU), :class:`EmulatedGraphs` on the CPU for tests. The emulation keeps the contract that can go wrong:
static buffers that a capture leaves unfilled (NaN) and that each replay overwrites.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from .inference import is_out_of_memory

__all__ = ["CudaGraphs", "EmulatedGraphs", "GraphBackend", "GraphStats", "GraphedForward", "graph_backend"]

Outputs = Sequence[torch.Tensor]


class GraphBackend(Protocol):
    """How a pass is captured and replayed."""

    def capture(self, fn: Callable[[], Outputs]) -> tuple[Callable[[], None], Outputs]:
        """Record ``fn`` (reading the static inputs it closes over); return ``(replay, static outputs)``."""
        ...


class CudaGraphs:
    """CUDA graphs (``torch.cuda.CUDAGraph``), captured on a side stream, replayed on the current one.

    Capture errors are thread-local: reader threads may decode on the GPU meanwhile."""

    def capture(self, fn: Callable[[], Outputs]) -> tuple[Callable[[], None], Outputs]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = fn()
        return graph.replay, outputs


class EmulatedGraphs:
    """CUDA graphs' buffer semantics on any device: a capture fills its outputs with NaN (it computes
    nothing), each replay recomputes into the same buffers."""

    def capture(self, fn: Callable[[], Outputs]) -> tuple[Callable[[], None], Outputs]:
        outputs = [_filled_like(t) for t in fn()]

        def replay() -> None:
            for buffer, value in zip(outputs, fn(), strict=True):
                buffer.copy_(value)

        return replay, outputs


def _filled_like(t: torch.Tensor) -> torch.Tensor:
    blank = torch.empty_like(t)
    return blank.fill_(float("nan") if t.is_floating_point() else 0)


def graph_backend(device: torch.device, enabled: bool = True) -> GraphBackend | None:
    """The backend that captures passes on ``device``: CUDA graphs on CUDA when ``enabled``, else none."""
    return CudaGraphs() if enabled and device.type == "cuda" else None


@dataclass
class GraphStats:
    """What a :class:`GraphedForward` did: calls run eagerly, replayed, keys captured, keys left eager (why)."""

    eager: int = 0
    replayed: int = 0
    captured: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # input shapes -> why they run eagerly


class _Graph:
    """One key's captured pass: its static inputs and outputs, and how to replay it."""

    def __init__(self, static: list[torch.Tensor | None], replay: Callable[[], None], outputs: Outputs) -> None:
        self.static, self.replay_fn, self.outputs = static, replay, list(outputs)

    def run(self, args: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        for buffer, arg in zip(self.static, args, strict=True):
            if buffer is not None:
                buffer.copy_(arg)
        self.replay_fn()
        return self.outputs


def _static_like(arg: torch.Tensor) -> torch.Tensor:
    """A buffer for ``arg``'s values with its strides where they are dense (an expanded or overlapping view's
    values get a dense buffer: one element per memory location, so that copying into it is defined)."""
    return torch.empty_like(arg, memory_format=torch.preserve_format)


def _spec(arg: torch.Tensor | None) -> tuple | None:
    if arg is None:
        return None
    return tuple(arg.shape), tuple(arg.stride()), arg.dtype, str(arg.device)


class GraphedForward:
    """``fn(*tensors, **settings) -> sequence of tensors``, replayed from a graph per key where a backend is
    given; without one (the CPU, ``--no_cuda_graphs``) every call runs ``fn`` eagerly.

    Args:
        fn: the pass; its tensor arguments may be ``None``; its settings (hashable) are part of the key.
        backend: how to capture (:func:`graph_backend`), or ``None``.
        max_graphs: keys holding a graph at once.
        warm_args: the leading arguments whose shapes (with the settings) decide that a key is warmed up;
            ``None``: all of them.
        warn: told once per key that stays eager, and why.
    """

    def __init__(self, fn: Callable[..., Outputs], backend: GraphBackend | None, max_graphs: int = 3,
                 warm_args: int | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.fn, self.backend, self.max_graphs, self.warm_args = fn, backend, max_graphs, warm_args
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()  # least recently used first
        self.warm: set[tuple] = set()  # warm-up keys that ran eagerly once
        self.refused: set[tuple] = set()  # keys that run eagerly for good
        self.max_captures = 4 * max_graphs
        self.stats = GraphStats()

    def __call__(self, *args: torch.Tensor | None, **settings: object) -> list[torch.Tensor]:
        """The pass's outputs: a graph's static buffers (valid until the next call of the same key) or eager."""
        if self.backend is None:
            return self._eager(args, settings)
        key = (tuple(_spec(a) for a in args), tuple(sorted(settings.items())))
        graph = self.graphs.get(key)
        if graph is not None:
            self.graphs.move_to_end(key)
            self.stats.replayed += 1
            return graph.run(args)
        warm_key = self._warm_key(key)
        if (key in self.refused or warm_key not in self.warm or any(a is None for a in args)
                or self.stats.captured >= self.max_captures):
            self.warm.add(warm_key)
            return self._eager(args, settings)
        return self._capture(key, args, settings)

    def _warm_key(self, key: tuple) -> tuple:
        return key[0][:self.warm_args], key[1]

    def _eager(self, args: Sequence[torch.Tensor | None], settings: dict) -> list[torch.Tensor]:
        self.stats.eager += 1
        try:
            return list(self.fn(*args, **settings))
        except (RuntimeError, MemoryError) as error:
            if is_out_of_memory(error):  # as the back-off judges it (cuDNN's and cuBLAS's words too)
                self.release()
            raise

    def release(self) -> None:
        """Drop every graph and its memory (they are captured again when their keys come back twice)."""
        for key in self.graphs:
            self.warm.discard(self._warm_key(key))
        self.graphs.clear()

    def _capture(self, key: tuple, args: Sequence[torch.Tensor | None], settings: dict) -> list[torch.Tensor]:
        """Capture ``key``'s pass, replay it on ``args`` and keep it if it matches an eager pass bit for bit."""
        static = [None if a is None else _static_like(a) for a in args]
        for buffer, arg in zip(static, args, strict=True):
            if buffer is not None:
                buffer.copy_(arg)
        expected = self._eager(args, settings)
        try:
            replay, outputs = self.backend.capture(lambda: self.fn(*static, **settings))
            graph = _Graph(static, replay, outputs)
            replayed = graph.run(args)
        except (RuntimeError, torch.OutOfMemoryError) as error:  # an op the capture refuses, or memory
            return self._refuse(key, f"capture failed ({str(error).splitlines()[0]})", expected)
        if len(replayed) != len(expected) or not all(_same(r, e) for r, e in zip(replayed, expected, strict=True)):
            return self._refuse(key, "its replay differs from the eager pass", expected)
        self.stats.captured += 1
        self.graphs[key] = graph
        while len(self.graphs) > self.max_graphs:
            dropped, _ = self.graphs.popitem(last=False)
            self.warm.discard(self._warm_key(dropped))
        return expected  # equal to the replay's, and not overwritten by the next replay

    def _refuse(self, key: tuple, why: str, expected: list[torch.Tensor]) -> list[torch.Tensor]:
        self.refused.add(key)
        shapes = " ".join("x".join(map(str, spec[0])) for spec in key[0] if spec is not None)
        self.stats.refused[shapes] = why
        self.warn(f"the forward pass for inputs {shapes} runs without a CUDA graph: {why}")
        return expected


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaNs included."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(
        torch.equal(_bits(a), _bits(b)))


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8) if t.is_floating_point() else t
