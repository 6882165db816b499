"""Command-line front ends, one module per tool; what they share is split by job: :mod:`.flags` (argparse
types and flag groups), :mod:`.summary` (the one-line summaries) and :mod:`.running` (devices, layout, shards,
workers, exit codes). Importing any of them imports no torch, so ``--help`` answers at once."""

from .flags import (
    HelpFormatter,
    add_dataset_args,
    add_decode_arg,
    add_device_args,
    add_run_args,
    batch_or_auto,
    fraction_or_auto,
    number_in,
    positive_int,
    quality,
    ratio_or_auto,
    shard_spec,
)
from .running import Outcome, Tool, decode_mode, discover_layout, prepare_device, resolve_shard, run_main
from .summary import batch_summary, examples, matting_summary, with_preview

__all__ = [
    "HelpFormatter",
    "Outcome",
    "Tool",
    "add_dataset_args",
    "add_decode_arg",
    "add_device_args",
    "add_run_args",
    "batch_or_auto",
    "batch_summary",
    "decode_mode",
    "discover_layout",
    "examples",
    "fraction_or_auto",
    "matting_summary",
    "number_in",
    "positive_int",
    "prepare_device",
    "quality",
    "ratio_or_auto",
    "resolve_shard",
    "run_main",
    "shard_spec",
    "with_preview",
]
