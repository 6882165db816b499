"""The matting loop's device pipeline, on the CPU where its logic runs: indexed devices, sync-free empty masks,
one-copy staging, deferred emission that never loses a computed batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from easyvolcap.errors import EvcError
from easyvolcap.inference import alpha_to_uint8, device_empty_masks, empty_masks, pinned_stack, with_index
from easyvolcap.layout import DatasetLayout
from easyvolcap.runners.matting import Download
from easyvolcap.runners.rvm import RvmOptions, run_rvm
from tests.stubs import RedChannelMatting


def test_a_device_without_index_gets_the_current_one():
    assert with_index(torch.device("cuda"), lambda: 3) == torch.device("cuda", 3)
    assert with_index(torch.device("cuda", 1), lambda: 3) == torch.device("cuda", 1)


def test_empty_masks_on_the_device_agree_with_the_host_rule():
    pha = torch.rand(6, 9, 11) * 0.5  # all at or below 0.5 ...
    pha[1, 2, 3] = 0.5  # ... exactly 0.5 is not above it
    pha[2, 0, 0] = 0.5001  # one pixel above
    pha[3] = 1.0
    pha[4] = 0.0
    pha[5, 4, 4] = 128 / 255  # rounds to the 8-bit level 128
    want = empty_masks(alpha_to_uint8(pha), pha)
    assert torch.equal(device_empty_masks(pha), want)
    assert want.tolist() == [True, True, False, False, True, False]


def test_pinned_stack_copies_each_image_once_into_one_batch():
    images = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
    batch = pinned_stack(images)
    assert batch.shape == (3, 4, 5, 3) and batch.dtype == torch.uint8
    assert np.array_equal(batch.numpy(), np.stack(images))
    with pytest.raises(ValueError, match="same shape"):
        pinned_stack([images[0], np.zeros((5, 5, 3), np.uint8)])


def test_download_on_the_cpu_is_ready_at_once():
    alpha = torch.arange(6, dtype=torch.uint8).view(2, 3)
    arrays = Download([alpha, None]).arrays()
    assert np.array_equal(arrays[0], alpha.numpy()) and arrays[1] is None


def test_a_failure_mid_run_still_writes_every_batch_computed_before_it(dataset):
    """Batch k is emitted after batch k + 1 is queued: when the run stops at a bad frame, the batch computed
    before it is written all the same."""
    bad = sorted((dataset / "images" / "01").iterdir())[2]
    bad.write_bytes(b"not a jpeg")
    layout = DatasetLayout.discover(dataset)
    with pytest.raises(EvcError, match="not a readable image"):
        run_rvm(layout, RedChannelMatting(), torch.device("cpu"), torch.float32,
                RvmOptions(mask_ext=".png", batch_size=1, workers=1), progress=False)
    assert len(list((dataset / "rvm" / "00").iterdir())) == 5  # the whole first camera
    assert sorted(p.name for p in (dataset / "rvm" / "01").iterdir()) == ["000000.png", "000001.png"]
