"""What CUDA graphs, channels-last, TF32 and half precision each add to a model's forward pass (model only).

    python bench/graph_tunings.py --device cuda                  # RVM resnet50 1080p x 16 frames, BGMv2 resnet101
                                                                 # 1080p x 8, SCHP LIP 16 crops: one table
    python bench/graph_tunings.py --device cpu --size 48 64 --frames 2 --crops 1 --passes 1   # the logic (tests; graphs
                                                                 # emulated, no speed figure)

Each tool's default model (synthesized weights of the official layout) runs the pass the tool makes at its
defaults, on inputs already on the device: first eagerly in float32 (the reference), then as the tool replays it
from CUDA graphs (``bench/matting_workloads.py`` ``graphed_pass``: warm-up and capture before the timed passes),
then graphs with one more change each: channels-last weights and inputs, cuDNN's TF32 off (PyTorch's default
has it on for convolutions), float16, bfloat16. Per row: images/s over ``--passes`` timed passes, the speed-up
over eager float32, and the largest difference of the alpha (SCHP: of the fusion logits) from the reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from matting_workloads import graphed_pass
from tool_inputs import TOOLS, synthesize

CONFIGS = [  # name, graphs, dtype, channels-last, cuDNN TF32
    ("eager fp32", False, torch.float32, False, True),
    ("graphs fp32", True, torch.float32, False, True),
    ("graphs fp32 channels-last", True, torch.float32, True, True),
    ("graphs fp32 TF32 off", True, torch.float32, False, False),
    ("graphs fp16", True, torch.float16, False, True),
    ("graphs bf16", True, torch.bfloat16, False, True),
]


def model_and_inputs(tool: str, weights: Path, device: torch.device, size: tuple[int, int], frames: int,
                     crops: int) -> tuple[torch.nn.Module, tuple, dict, int]:
    """The tool's default model on ``device`` and the arguments of one pass as the tool makes it: ``(model, args,
    kwargs, images)``; RVM's recurrent states are those after a first pass (the steady state)."""
    from easyvolcap import pretrained

    generator = torch.Generator().manual_seed(0)
    if tool == "rvm":
        from easyvolcap.models.rvm.checkpoints import internal_scale

        model = pretrained.rvm("resnet50", checkpoint=weights, device=device)
        src = torch.rand(1, frames, 3, *size, generator=generator).to(device)
        kwargs = {"downsample_ratio": internal_scale(size, None)}
        with torch.inference_mode():
            states = model(src, downsample_ratio=kwargs["downsample_ratio"])[2:]
        return model, (src, *states), kwargs, frames
    if tool == "bgmv2":
        from easyvolcap.models.bgmv2.checkpoints import refine_settings

        model = pretrained.bgmv2(checkpoint=weights, device=device)
        src, bgr = (torch.rand(frames, 3, *size, generator=generator).to(device) for _ in range(2))
        scale, pixels = refine_settings(size, None, 80_000)
        kwargs = {"backbone_scale": scale, "refine_mode": "sampling", "sample_pixels": pixels, "threshold": 0.1}
        return model, (src, bgr), kwargs, frames
    model = pretrained.schp("lip", checkpoint=weights, device=device)
    height, width = model.label_set.input_size
    return model, (torch.randn(crops, 3, height, width, generator=generator).to(device),), {}, crops


def first_output(tool: str, outputs: list[torch.Tensor]) -> torch.Tensor:
    """The alpha (RVM, BGMv2) or the fusion logits (SCHP) of a pass's outputs, as float32."""
    return outputs[{"rvm": 1, "bgmv2": 0, "schp": 0}[tool]].float()


def eager_pass(tool: str, model: torch.nn.Module) -> Callable[..., list[torch.Tensor]]:
    """The pass without graphs, its outputs as :func:`matting_workloads.graphed_pass` gives them."""
    if tool == "schp":
        return lambda x: [model(x)[0][-1]]
    if tool == "rvm":
        return lambda *args, **kwargs: model(*args, **kwargs)[:2]
    return lambda *args, **kwargs: list(model(*args, **kwargs)[:2])


def _cast(value: object, dtype: torch.dtype, channels_last: bool) -> object:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return value
    value = value.to(dtype)
    if channels_last and value.dim() == 5:  # an RVM clip: the layout of its frames
        return value.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, value.shape[:2])
    if channels_last and value.dim() == 4:
        value = value.contiguous(memory_format=torch.channels_last)
    return value


def measure(tool: str, weights: Path, device: torch.device, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """``(config, images/s, largest difference from eager float32)`` for each of :data:`CONFIGS`."""
    model, inputs, kwargs, images = model_and_inputs(tool, weights, device, tuple(args.size), args.frames, args.crops)
    rows, reference = [], None
    for name, graphs, dtype, channels_last, tf32 in CONFIGS:
        if dtype != torch.float32 and device.type != "cuda":
            continue  # half precision is CUDA only in the tools
        torch.backends.cudnn.allow_tf32 = tf32
        model.to(dtype=dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        call = graphed_pass(tool, model, device) if graphs else eager_pass(tool, model)
        cast = [_cast(a, dtype, channels_last) for a in inputs]
        with torch.inference_mode():
            for _ in range(2):  # warm-up and capture
                out = first_output(tool, call(*cast, **kwargs)).clone()
            _sync(device)
            start = time.perf_counter()
            for _ in range(args.passes):
                call(*cast, **kwargs)
            _sync(device)
        seconds = time.perf_counter() - start
        reference = out if reference is None else reference
        rows.append((name, images * args.passes / seconds, (out - reference).abs().max().item()))
    torch.backends.cudnn.allow_tf32 = True
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=16, help="frames per RVM pass (BGMv2: half)")
    parser.add_argument("--crops", type=int, default=16, help="crops per SCHP pass")
    parser.add_argument("--passes", type=int, default=10, help="timed passes per row")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.backends.cudnn.benchmark = False  # as the tools run
    emulated = device.type != "cuda"
    print(f"| tool ({args.device}{', graphs emulated' if emulated else ''}) | run | img/s | vs eager fp32 "
          "| max diff from eager fp32 |")
    print("| --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="tunings-") as folder:
        weights = synthesize(Path(folder), args.tools)
        for tool in args.tools:
            if tool == "bgmv2":
                args.frames, frames = max(1, args.frames // 2), args.frames
            rows = measure(tool, weights[tool], device, args)
            if tool == "bgmv2":
                args.frames = frames
            base = rows[0][1]
            for name, rate, diff in rows:
                speed = "-" if emulated else f"{rate / base:.2f}x"
                print(f"| {tool} | {name} | {'-' if emulated else f'{rate:.1f}'} | {speed} | {diff:.2g} |", flush=True)


if __name__ == "__main__":
    main()
