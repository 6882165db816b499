"""The measured workloads of ``bench/matting.py``, each run in a fresh process by that script.

    python bench/matting_workloads.py '{"mode": "tool", "tool": "rvm", ...}'

prints one JSON line: by kind of measurement, the seconds, images, peak RSS, peak CUDA memory, this
process's CPU use and that of other processes. All use the same model object and weights:

- tool: the runner (``run_rvm`` / ``run_bgmv2`` / ``run_schp``) on the dataset on disk, as the command line
  runs it: ``batch`` ``"default"`` is the tool's own ``--batch_size`` default (RVM, SCHP: auto), float16
  only with ``fp16`` on CUDA, cuDNN autotuning on CUDA; JPEG masks (SCHP: detector ``none``, one person
  per frame, PNG masks and palette PNG label maps).
- model-only: exactly the tool's forward passes (recorded by a forward pre-hook during a run of
  the tool without CUDA graphs, inputs and recurrent states copied), run again on those tensors already in
  memory, eagerly and (``tool`` mode) as the tool replays them from CUDA graphs (``graphed_pass``; emulated
  on the CPU), with the two paths' agreement; only the forward passes are timed, nothing is read or written.
- peer: what a user would run instead, reimplemented from its documented behaviour (see ``PEERS``):
  EasyVolcap's RVM script (all cameras of one frame per pass, thread-pool reads and writes),
  RVM's ``convert_video`` (one camera at a time, ``seq_chunk`` 12, PNG alpha sequence), EasyVolcap's
  BGMv2 script (chunks of 64 frames through a thread pool, 8 per pass, the background converted once per
  camera), SCHP's ``simple_extractor`` (one frame at a time, one warp per class back). float32.

``tool`` measures both the tool and the model-only rate in one process, close in time (this
machine's speed drifts by several percent over minutes): an untimed run of the tool, a timed run
(its peak RSS is read here), a recording run, then the timed replay. All
of it happens inside an ``inference_session`` kept open throughout, so kernel setup and the heap's
growth to its peak are not counted: the steady state of a long run. ``peer`` runs one untimed pass first
(it keeps nothing between passes: glibc unmaps its large blocks after every pass). ``model`` alone measures
the replay under other settings (``tuning``, ``flush_denormal``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from easyvolcap.image_io import image_size, read_rgb
from easyvolcap.layout import Camera, DatasetLayout


def _busy_jiffies() -> int:
    """Busy CPU time of the whole machine (all processes), in clock ticks; 0 where /proc is missing."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------- model-only


def _snapshot(model: torch.nn.Module) -> dict[str, object]:
    """The settings a runner sets on the model between passes (BGMv2's scale and refiner)."""
    refiner = getattr(model, "refiner", None)
    names = ("mode", "sample_pixels", "threshold")
    settings = {f"refiner.{n}": getattr(refiner, n) for n in names if hasattr(refiner, n)}
    if hasattr(model, "backbone_scale"):
        settings["backbone_scale"] = model.backbone_scale
    return settings


def _restore(model: torch.nn.Module, settings: dict[str, object]) -> None:
    for name, value in settings.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, attr, value)


def _copy(value: object) -> object:
    return value.clone() if isinstance(value, torch.Tensor) else value


def record_passes(model: torch.nn.Module, run_tool: Callable[[], None]) -> list[tuple]:
    """Every forward pass the tool makes: ``(args, kwargs, settings)``, inputs copied. Run the tool without CUDA
    graphs (``cuda_graphs=False``): a replayed graph does not call the model's ``forward``."""
    calls: list[tuple] = []

    def hook(module, args, kwargs):
        calls.append((tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()}, _snapshot(module)))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run_tool()
    finally:
        handle.remove()
    return calls


def replay(model: torch.nn.Module, calls: list[tuple], device: torch.device, tuning: str = "tool") -> float:
    """Seconds spent running ``calls`` again on inputs already in memory; nothing is read or written.

    ``tuning``: ``tool`` runs them as recorded (call it inside ``inference_session``, as the runners
    run them); ``none`` with NCHW weights and inputs, ``nhwc`` with channels-last ones (call these two
    outside a session: with glibc's default allocator).
    """
    layout = torch.contiguous_format if tuning == "none" else torch.channels_last
    if tuning != "tool":
        model.to(memory_format=layout)
        calls = [(tuple(_relayout(a, layout) for a in args), kwargs, settings) for args, kwargs, settings in calls]
    return _timed_calls(model, model, calls, device)


def _timed_calls(call: Callable, model: torch.nn.Module, calls: list[tuple], device: torch.device) -> float:
    """Seconds spent in ``call(*args, **kwargs)`` over ``calls``, each with the model's recorded settings."""
    seconds = 0.0
    with torch.inference_mode():
        for args, kwargs, settings in calls:
            _restore(model, settings)
            _sync(device)
            start = time.perf_counter()
            call(*args, **kwargs)
            _sync(device)
            seconds += time.perf_counter() - start
    return seconds


def graphed_pass(tool: str, model: torch.nn.Module, device: torch.device) -> Callable[..., list[torch.Tensor]]:
    """The recorded passes' model call as the tool makes it with CUDA graphs (``easyvolcap.graphs``): RVM's whole
    clip (a camera's first clip from zero states once their shapes are known), BGMv2's coarse network (its
    refiner eagerly), SCHP's parser. On the CPU the graphs are emulated: the logic runs, the timing means nothing.
    Returns ``call(*args, **kwargs)`` giving the outputs the tools use: RVM ``[fgr, pha]``, BGMv2 ``[pha, fgr]``,
    SCHP ``[fusion logits]``."""
    from easyvolcap.graphs import EmulatedGraphs, GraphedForward, graph_backend

    backend = graph_backend(device) or EmulatedGraphs()
    if tool == "rvm":
        graphed = GraphedForward(lambda *a, **k: model(*a, **k), backend, warm_args=1)
        zeros: dict[tuple, list[torch.Tensor]] = {}

        def rvm_call(src, *state, downsample_ratio):
            start = (*src.shape[-2:], downsample_ratio)
            if state[0] is None and start in zeros:
                state = zeros[start]
            fgr, pha, *state = graphed(src, *state, downsample_ratio=downsample_ratio)
            zeros.setdefault(start, [torch.zeros_like(r) for r in state])
            return [fgr, pha]

        return rvm_call
    if tool == "bgmv2":
        coarse = GraphedForward(lambda s, b, *, scale: model.coarse(s, b, backbone_scale=scale), backend)

        def bgmv2_call(src, bgr, *, backbone_scale, **refine):
            return list(model.refine(src, bgr, coarse(src, bgr, scale=backbone_scale), **refine)[:2])

        return bgmv2_call
    parser = GraphedForward(lambda x: [model(x)[0][-1]], backend)
    return lambda x: parser(x)


def graphed_replay(tool: str, model: torch.nn.Module, calls: list[tuple], device: torch.device) -> float:
    """Seconds spent running ``calls`` again through :func:`graphed_pass` (warm-up and capture included: the
    cost a run pays); nothing is read or written."""
    return _timed_calls(graphed_pass(tool, model, device), model, calls, device)


def graph_agreement(tool: str, model: torch.nn.Module, calls: list[tuple], device: torch.device) -> dict:
    """How the graphed passes' outputs compare with the eager passes', call by call: the passes compared, those
    equal bit for bit, and the largest absolute difference."""
    call = graphed_pass(tool, model, device)
    equal, largest = 0, 0.0
    with torch.inference_mode():
        for args, kwargs, settings in calls:
            _restore(model, settings)
            eager = model(*args, **kwargs)
            eager = {"rvm": lambda o: o[:2], "bgmv2": lambda o: o[:2], "schp": lambda o: [o[0][-1]]}[tool](eager)
            graphed = call(*args, **kwargs)
            diffs = [(g.float() - e.float()).abs().max().item() for g, e in zip(graphed, eager, strict=True)]
            equal += all(torch.equal(g, e) for g, e in zip(graphed, eager, strict=True))
            largest = max([largest, *diffs])
    return {"passes": len(calls), "equal": equal, "max_abs_diff": largest}


def _relayout(value: object, layout: torch.memory_format) -> object:
    if not isinstance(value, torch.Tensor) or value.dim() not in (4, 5):
        return value
    if value.dim() == 5:  # RVM clips (B, T, C, H, W): the layout of their (B*T, C, H, W) frames
        return _relayout(value.flatten(0, 1), layout).unflatten(0, value.shape[:2])
    return value.contiguous(memory_format=layout)


# ------------------------------------------------------------------------------------------- tools
# ``batch`` None: ``--batch_size auto``; ``dtype``: float16 where the tool would use it (``--fp16`` on CUDA).


def rvm_tool(layout: DatasetLayout, model, device, batch: int | None, mask_dir: str, workers: int,
             decode: str = "auto", dtype: torch.dtype = torch.float32, cuda_graphs: bool = True):
    from easyvolcap.runners.rvm import RvmOptions, run_rvm

    options = RvmOptions(mask_dir=mask_dir, batch_size=batch, overwrite=True, workers=workers, decode=decode,
                         cuda_graphs=cuda_graphs)
    return run_rvm(layout, model, device, dtype, options, progress=False)


def bgmv2_tool(layout: DatasetLayout, model, device, batch: int | None, mask_dir: str, workers: int,
               decode: str = "auto", dtype: torch.dtype = torch.float32, cuda_graphs: bool = True):
    from easyvolcap.runners.bgmv2 import Bgmv2Options, run_bgmv2

    options = Bgmv2Options(mask_dir=mask_dir, batch_size=batch, overwrite=True, workers=workers, decode=decode,
                           cuda_graphs=cuda_graphs)
    return run_bgmv2(layout, model, device, dtype, options, progress=False)


def schp_tool(layout: DatasetLayout, model, device, batch: int | None, mask_dir: str, workers: int,
              decode: str = "auto", dtype: torch.dtype = torch.float32, cuda_graphs: bool = True):
    """``--detector none --dataset lip``: crops and restores on the CPU, frames always decoded there (``decode``
    is ignored); ``batch`` crops per parser pass, frames per detector pass the tool's default."""
    from easyvolcap.detectors import WholeFrameDetector
    from easyvolcap.models.schp import label_set
    from easyvolcap.runners.schp import SchpOptions, run_schp

    options = SchpOptions(mask_dir=mask_dir, schp_dir=f"{mask_dir}_schp", batch_size=batch, overwrite=True,
                          workers=workers, cuda_graphs=cuda_graphs)
    return run_schp(layout, WholeFrameDetector(), model, label_set("lip"), device, dtype, options, progress=False)


# -------------------------------------------------------------------------------------------- peers
# What a user would run instead, reimplemented here from the peers' documented behaviour (no upstream
# code): the same model object and weights, float32, their batching, threading and file formats.

EVC_RVM_RATIO = 0.25  # EasyVolcap's RVM script's fixed downsample ratio
EVC_THREADS = 16  # EasyVolcap's parallel_execution: a thread pool over the items of one call


def _read_all(paths: list[Path], pool) -> list[np.ndarray]:
    return list(pool.map(read_rgb, paths))


def _write_jpegs(paths: list[Path], masks: np.ndarray, pool) -> None:
    def write(job: tuple[Path, np.ndarray]) -> None:
        path, mask = job
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), mask, [cv2.IMWRITE_JPEG_QUALITY, 85]):
            raise OSError(f"cannot write {path}")
    list(pool.map(write, zip(paths, masks, strict=True)))


def _load(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """The usual idiom: stack, move, to float in [0, 1], channels first."""
    return torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float() / 255


def evc_rvm(layout: DatasetLayout, model, device, mask_dir: str) -> None:
    """EasyVolcap's RVM script: every pass is frame ``t`` of all cameras (``--batch_size`` counts cameras), each
    camera its own row of the recurrent state; the frames are read and the masks written by a thread pool
    (``parallel_execution``), each step waiting for the last; downsample ratio 0.25; JPEG masks."""
    from concurrent.futures import ThreadPoolExecutor

    cameras = layout.cameras
    rec: list = [None] * 4
    with ThreadPoolExecutor(EVC_THREADS) as pool:
        for t in range(min(len(c) for c in cameras)):
            src = _load(_read_all([c.frames[t] for c in cameras], pool), device)  # (cameras, 3, H, W)
            with torch.inference_mode():
                _, pha, *rec = model(src, *rec, downsample_ratio=EVC_RVM_RATIO)
            masks = (pha[:, 0] * 255).round().to(torch.uint8).cpu().numpy()
            _write_jpegs([layout.output_path(mask_dir, c.name, c.frames[t], ".jpg") for c in cameras], masks, pool)


def rvm_convert_video(layout: DatasetLayout, model, device, mask_dir: str, seq_chunk: int = 12) -> None:
    """RVM's own ``inference.py`` ``convert_video`` per camera (its documented usage for an image sequence):
    frames read one by one with PIL and ``ToTensor``, ``seq_chunk`` 12 frames a pass as one ``[1, T, 3, H, W]``
    clip, its auto downsample ratio, and the alpha written as a PNG sequence one image after the other."""
    from PIL import Image

    for camera in layout.cameras:
        rec: list = [None] * 4
        for t0 in range(0, len(camera), seq_chunk):
            frames = camera.frames[t0:t0 + seq_chunk]
            clip = []
            for path in frames:
                with Image.open(path) as image:
                    clip.append(np.asarray(image.convert("RGB")))
            src = _load(clip, device)[None]
            ratio = min(512 / max(src.shape[-2:]), 1)
            with torch.inference_mode():
                _, pha, *rec = model(src, *rec, downsample_ratio=ratio)
            for path, mask in zip(frames, (pha[0, :, 0] * 255).round().to(torch.uint8).cpu().numpy(), strict=True):
                out = layout.output_path(mask_dir, camera.name, path, ".png")
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask, "L").save(out)


def evc_bgmv2(layout: DatasetLayout, model, device, mask_dir: str, chunk: int = 64, batch: int = 8) -> None:
    """EasyVolcap's BGMv2 script: per camera, its background converted to a tensor once, then chunks of 64
    frames read by a thread pool, run 8 at a time, and the chunk's masks written by a thread pool; JPEG masks."""
    from concurrent.futures import ThreadPoolExecutor

    from easyvolcap.models.bgmv2.checkpoints import refine_settings
    from easyvolcap.runners.bgmv2 import Bgmv2Options

    options = Bgmv2Options()
    model.refiner.mode, model.refiner.threshold = options.refine_mode, options.refine_threshold
    with ThreadPoolExecutor(EVC_THREADS) as pool:
        for camera in layout.cameras:
            bgr = _load([read_rgb(layout.root / "bkgd" / f"{camera.name}.png")], device)
            model.backbone_scale, model.refiner.sample_pixels = refine_settings(
                tuple(bgr.shape[-2:]), options.backbone_scale, options.refine_sample_pixels)
            for c0 in range(0, len(camera), chunk):
                paths = list(camera.frames[c0:c0 + chunk])
                images = _read_all(paths, pool)
                masks = []
                for b0 in range(0, len(images), batch):
                    src = _load(images[b0:b0 + batch], device)
                    with torch.inference_mode():
                        pha = model(src, bgr.expand(len(src), -1, -1, -1))[0]
                    masks.append((pha[:, 0] * 255).round().to(torch.uint8).cpu().numpy())
                _write_jpegs([layout.output_path(mask_dir, camera.name, p, ".jpg") for p in paths],
                             np.concatenate(masks), pool)


def simple_extractor(layout: DatasetLayout, model, device, mask_dir: str) -> None:
    """SCHP's ``simple_extractor`` steps, one frame at a time (its data loader's batch of 1): read, letterbox
    and normalise the frame, parse it, warp every class's logits back (one warp per class), argmax, write
    the palette PNG (and, as our tool does, the 0/255 mask)."""
    from easyvolcap.image_io import encode_image, encode_label_png
    from easyvolcap.models.schp import (
        affine_transform,
        box_to_center_scale,
        get_palette,
        normalize,
        upsample_logits,
        warp_to_input,
    )

    size, palette = (473, 473), get_palette(20)
    for camera in layout.cameras:
        for path in camera.frames:
            image = read_rgb(path)[..., ::-1]
            height, width = image.shape[:2]
            center, scale = box_to_center_scale((0, 0, width - 1, height - 1), size)
            x = normalize(warp_to_input(np.ascontiguousarray(image), affine_transform(center, scale, size), size))
            with torch.inference_mode():
                logits = upsample_logits(model(x.to(device))[0][-1], size)[0].cpu().numpy()
            inverse = affine_transform(center, scale, size, inverse=True)
            labels = _warp_per_class(logits, inverse, (width, height)).argmax(axis=0).astype(np.uint8)
            for folder, data in ((mask_dir, encode_image(np.where(labels > 0, 255, 0).astype(np.uint8), ".png")),
                                 (f"{mask_dir}_schp", encode_label_png(labels, palette))):
                out = layout.output_path(folder, camera.name, path, ".png")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)


def _warp_per_class(logits: np.ndarray, inv_trans: np.ndarray, dsize: tuple[int, int]) -> np.ndarray:
    """Upstream ``transform_logits``: one bilinear warp per class, ``[C, h, w]``."""
    return np.stack([cv2.warpAffine(channel, inv_trans, dsize, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0) for channel in logits])


PEERS = {"rvm": {"evc_rvm": evc_rvm, "rvm_convert_video": rvm_convert_video}, "bgmv2": {"evc_bgmv2": evc_bgmv2},
         "schp": {"simple_extractor": simple_extractor}}
PEER_TITLES = {"evc_rvm": "EasyVolcap RVM script", "rvm_convert_video": "RVM convert_video",
               "evc_bgmv2": "EasyVolcap BGMv2 script", "simple_extractor": "SCHP simple_extractor"}


def rvm_warmup(layout: DatasetLayout, model, device, batch: int) -> None:
    from easyvolcap.models.rvm.checkpoints import internal_scale

    camera = layout.cameras[0]
    size = image_size(camera.frames[0])
    with torch.inference_mode():
        model(torch.rand(1, min(batch, len(camera)), 3, *size, device=device),
              downsample_ratio=internal_scale(size))


def bgmv2_warmup(layout: DatasetLayout, model, device, batch: int) -> None:
    camera = layout.cameras[0]
    src = torch.rand(min(batch, len(camera)), 3, *image_size(camera.frames[0]), device=device)
    with torch.inference_mode():
        model(src, src.flip(-1))


def schp_warmup(layout: DatasetLayout, model, device, batch: int) -> None:
    with torch.inference_mode():
        model(torch.rand(min(batch, len(layout.cameras[0])), 3, 473, 473, device=device))


# ------------------------------------------------------------------------------------------- common


def _write_all(layout: DatasetLayout, mask_dir: str, items: list[tuple[Camera, int]], alpha: np.ndarray) -> None:
    for (camera, t), mask in zip(items, alpha, strict=True):
        path = layout.output_path(mask_dir, camera.name, camera.frames[t], ".jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), mask, [cv2.IMWRITE_JPEG_QUALITY, 85]):
            raise OSError(f"cannot write {path}")


def load_model(tool: str, variant: str, weights: Path, device: torch.device) -> torch.nn.Module:
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    if tool == "schp":
        from easyvolcap.models.schp import schp_resnet101
        from easyvolcap.weights import clean_state_dict

        model = schp_resnet101(num_classes=20)
        state_dict = clean_state_dict(state_dict)
    elif tool == "rvm":
        from easyvolcap.models.rvm import MattingNetwork

        model = MattingNetwork(variant)
    else:
        from easyvolcap.models.bgmv2 import MattingRefine

        model = MattingRefine(variant)
    model.load_state_dict(state_dict)
    return model.eval().to(device)


WORKLOADS = {
    "rvm": {"warmup": rvm_warmup, "tool": rvm_tool},
    "bgmv2": {"warmup": bgmv2_warmup, "tool": bgmv2_tool},
    "schp": {"warmup": schp_warmup, "tool": schp_tool},
}


def _batch_text(report) -> str:
    """The batch a tool's run used: ``auto (2)``, ``auto (2-8)`` or ``8``."""
    sizes = sorted(set(report.batch_sizes.values()))
    text = "-".join(str(n) for n in (sizes[0], sizes[-1]) if n) if len(sizes) > 1 else str(sizes[0])
    return f"auto ({text})" if report.batch_mode == "auto" else text


def default_batch(tool: str) -> int | None:
    """The tool's ``--batch_size`` default, from its command line (``None``: auto)."""
    from importlib import import_module

    parser = import_module(f"easyvolcap.cli.{tool}").build_parser()
    return parser.parse_args(["--data_root", "."]).batch_size


def measure(spec: dict) -> dict[str, dict]:
    """Run one workload as ``spec`` says; what was measured, by kind (``tool``, ``model``, ``loop``)."""
    from easyvolcap.inference import inference_session

    if spec.get("flush_denormal"):
        torch.set_flush_denormal(True)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if spec["device"] == "auto" else spec["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # as the CLI runs (prepare_device)
    dtype = torch.float16 if spec.get("fp16") and device.type == "cuda" else torch.float32
    layout = DatasetLayout.discover(spec["root"])
    model = load_model(spec["tool"], spec["variant"], Path(spec["weights"]), device)
    work = WORKLOADS[spec["tool"]]
    batch = default_batch(spec["tool"]) if spec["batch"] == "default" else spec["batch"]
    run_tool = partial(work["tool"], layout, model, device, batch, spec["mask_dir"], spec["workers"],
                       spec.get("decode", "auto"), dtype)
    if dtype != torch.float32:
        model = model.to(dtype)
    results = {}
    if spec["mode"] == "peer":  # the peer's plain process, float32, as its script runs; as many timed runs as the tool
        model = model.float()
        work["warmup"](layout, model, device, 2)
        peer = PEERS[spec["tool"]][spec["peer"]]
        runs = []
        for _ in range(max(1, spec.get("rounds", 2))):
            with _Timer(device) as timer:
                peer(layout, model, device, spec["mask_dir"])
            runs.append(timer.result(layout))
        results[spec["peer"]] = min(runs, key=lambda r: r["seconds"])
    elif spec["mode"] == "tool":
        # An untimed run first, in a session kept open around the timed runs (the tool's own session
        # then changes nothing): kernels are set up and the heap has grown to its peak, as in a long
        # run (a shorter warm-up leaves hundreds of MB to be faulted in during the timed run). The
        # tool's peak memory is read before the recording (which holds every input) starts. Then
        # tool and model-only runs alternate, ``rounds`` of each, and the fastest of each kind is
        # kept: a machine whose speed drifts over minutes slows both alike, not just one of them.
        with inference_session(model, device):
            report = run_tool()
            with _Timer(device) as timer:
                run_tool()
            tool = [timer.result(layout) | {"batch_text": _batch_text(report)}]
            first = {key: tool[0][key] for key in ("peak_rss", "cuda_peak", "batch_text")}  # later runs: the recording
            calls = record_passes(model, partial(run_tool, cuda_graphs=False))
            runs = {"tool": tool, "model": [], "model_graphs": []}
            for round_ in range(max(1, spec.get("rounds", 2))):
                if round_:
                    with _Timer(device) as timer:
                        run_tool()
                    runs["tool"].append(timer.result(layout) | first)
                with _Timer(device) as timer:
                    timer.seconds = replay(model, calls, device)
                runs["model"].append(timer.result(layout))
                with _Timer(device) as timer:
                    timer.seconds = graphed_replay(spec["tool"], model, calls, device)
                runs["model_graphs"].append(timer.result(layout))
            results = {kind: min(found, key=lambda r: r["seconds"]) for kind, found in runs.items()}
            results["agreement"] = graph_agreement(spec["tool"], model, calls, device)
    else:  # model-only with other tunings than the tool's
        tuning = spec.get("tuning", "tool")
        with inference_session(model, device):
            calls = record_passes(model, partial(run_tool, cuda_graphs=False))
        if tuning == "tool":
            with inference_session(model, device):
                replay(model, calls[:2], device)  # grows the heap again
                with _Timer(device) as timer:
                    timer.seconds = replay(model, calls, device)
        else:
            replay(model, calls[:2], device, tuning)
            with _Timer(device) as timer:
                timer.seconds = replay(model, calls, device, tuning)
        results["model"] = timer.result(layout)
    return results


class _Timer:
    """Wall time, this process's CPU time and other processes' CPU time of a block; CUDA synchronized."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: float | None = None  # the measured time; the block's wall time unless set inside it

    def __enter__(self) -> _Timer:
        _sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self._busy, self._cpu, self._start = _busy_jiffies(), _cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        self.wall = time.perf_counter() - self._start
        self.cpu = _cpu_seconds() - self._cpu
        self.others = max(0.0, (_busy_jiffies() - self._busy) / os.sysconf("SC_CLK_TCK") - self.cpu)
        self.faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self._faults
        if self.seconds is None:
            self.seconds = self.wall

    def result(self, layout: DatasetLayout) -> dict:
        cuda = self.device.type == "cuda"
        return {
            "seconds": self.seconds,
            "images": layout.num_frames,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # of the process so far
            "cuda_peak": torch.cuda.max_memory_allocated(self.device) if cuda else None,  # of the block
            "device": torch.cuda.get_device_name(self.device) if cuda else "cpu",
            "torch": (torch.__version__, torch.get_num_threads()),
            "cpu_per_s": self.cpu / self.wall,  # this process's CPU seconds per second
            "others_per_s": self.others / self.wall,  # other processes' CPU seconds per second
            "page_faults": self.faults,  # minor page faults: memory mapped in during the block
        }


def synthesize_weights(keys: str, out: str) -> None:
    """Save the synthetic state dict of a ``*.keys.json`` layout (the same every time)."""
    from easyvolcap.synthetic.weights import load_spec, synth_state_dict

    torch.save(synth_state_dict(load_spec(keys)), out)


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    if job["mode"] == "weights":
        synthesize_weights(job["keys"], job["out"])
    else:
        print(json.dumps(measure(job)))
