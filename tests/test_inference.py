"""Device and precision choice, host-to-device batches and the out-of-memory back-off."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from easyvolcap.errors import EvcError
from easyvolcap.inference import BatchLimit, pick_device, pick_dtype, run_with_backoff, split_list, to_device_batch


def test_device_choice():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(EvcError, match="--device tpu: not a device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EvcError, match="CUDA is not available on this machine"):
            pick_device("cuda:0")


def test_fp16_only_on_cuda():
    assert pick_dtype(torch.device("cpu"), fp16=True) == (torch.float32, "--fp16 needs CUDA; computing in float32 on "
                                                                          "the CPU")
    assert pick_dtype(torch.device("cuda"), fp16=True) == (torch.float16, None)
    assert pick_dtype(torch.device("cuda"), fp16=False) == (torch.float32, None)


def test_batches_are_contiguous_nchw_in_unit_range():
    images = [np.full((2, 3, 3), 255, np.uint8), np.zeros((2, 3, 3), np.uint8)]
    batch = to_device_batch(images, torch.device("cpu"), torch.float32)
    assert batch.shape == (2, 3, 2, 3) and batch.is_contiguous() and batch.max() == 1 and batch.min() == 0


def test_backoff_halves_once_announced_and_keeps_order():
    done, warnings = [], []

    def forward(work):
        if len(work) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        done.extend(work)

    limit = BatchLimit(16)
    run_with_backoff(list(range(20)), len, lambda w, n: (w[i:i + n] for i in range(0, len(w), n)), forward, limit,
                     warnings.append)
    assert done == list(range(20)) and limit.value == 2  # 16 -> 8 -> 4 -> 2
    assert warnings == ["out of device memory: lowering the batch to 8 images per forward pass"]


def test_backoff_gives_up_at_one_image_and_passes_other_errors():
    def always_oom(work):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(EvcError, match="out of device memory with one image per forward pass"):
        run_with_backoff([1, 2], len, lambda w, n: ([x] for x in w), always_oom, BatchLimit(2), lambda m: None)

    def bug(work):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_backoff([1], len, lambda w, n: [w], bug, BatchLimit(1), lambda m: None)


def test_the_failed_attempt_is_freed_before_the_retry_starts():
    """The activations of a pass that ran out of memory must be gone when the smaller pass starts:
    a retry inside the ``except`` block keeps them alive through the exception's traceback."""

    class Activation:
        pass

    allocated, alive_at_retry = [], []

    def forward(work):
        alive_at_retry.append([ref() is not None for ref in allocated])
        activation = Activation()  # what the pass allocates: referenced only by this frame
        allocated.append(weakref.ref(activation))
        if len(work) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    gc.disable()  # the release must not depend on a collection happening to run
    try:
        run_with_backoff([1, 2, 3, 4], len, split_list, forward, BatchLimit(4), lambda m: None)
    finally:
        gc.enable()
    assert len(alive_at_retry) == 6  # 4 -> OOM, 2 -> OOM, then 1, 1, 1, 1
    assert alive_at_retry[1] == [False] and alive_at_retry[2] == [False, False]


def test_host_allocator_failure_halves_the_batch_once_announced():
    done, warnings = [], []

    def forward(work):
        if len(work) > 2:
            torch.empty(2**60, dtype=torch.uint8)  # the CPU allocator's real failure (beyond any address space)
        done.extend(work)

    limit = BatchLimit(8)
    run_with_backoff(list(range(10)), len, split_list, forward, limit, warnings.append)
    assert done == list(range(10)) and limit.value == 2
    assert warnings == ["out of host memory: lowering the batch to 4 images per forward pass"]

    def numpy_fails(work):
        raise MemoryError("Unable to allocate 3.0 GiB for an array")

    with pytest.raises(EvcError, match="out of host memory with one image per forward pass"):
        run_with_backoff([1, 2], len, split_list, numpy_fails, BatchLimit(2), lambda m: None)


@pytest.mark.gpu
def test_rvm_on_cuda_in_half_precision(tmp_path, rvm_checkpoints):
    from easyvolcap.cli import rvm
    from easyvolcap.synthetic.capture import make_demo_dataset

    data = make_demo_dataset(tmp_path / "d", cameras=2, frames=3, size=(48, 64), odd_size=None)
    assert rvm.main(["--data_root", str(data), "--variant", "mobilenetv3", "--device", "cuda", "--fp16",
                     "--chkpt_path", str(rvm_checkpoints["mobilenetv3"])]) == 0
    assert len(list((data / "rvm").rglob("*.jpg"))) == 6
