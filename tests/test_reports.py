"""Reports and layouts of worker processes merge into one run's."""

from __future__ import annotations

import argparse

import pytest

from easyvolcap.cli import Outcome, number_in
from easyvolcap.layout import DatasetLayout
from easyvolcap.runners.backgrounds import BackgroundReport
from easyvolcap.runners.bgmv2 import Bgmv2Report
from easyvolcap.runners.schp import SchpReport


def test_matting_reports_add_up_and_keep_the_longest_wall_time():
    a = Bgmv2Report(frames_processed=4, cameras_processed=["00"], masks_written=4, empty_frames=[("00", "1")],
                    settings={(48, 64): (0.25, 80)}, backbone="resnet50", seconds=2.0)
    b = Bgmv2Report(frames_processed=3, cameras_complete=["01"], masks_written=2, fgr_written=1,
                    settings={(40, 56): (0.25, 80)}, seconds=3.5)
    merged = a.merge(b)
    assert (merged.frames_processed, merged.masks_written, merged.fgr_written, merged.seconds) == (7, 6, 1, 3.5)
    assert merged.cameras_processed == ["00"] and merged.cameras_complete == ["01"]
    assert merged.empty_frames == [("00", "1")] and merged.backbone == "resnet50" and len(merged.settings) == 2


def test_parsing_and_background_reports_merge_their_own_fields():
    schp = SchpReport(frames_written=2, people=3, frames_without_person=[("00", "2")], seconds=1.0).merge(
        SchpReport(frames_written=1, people=1, seconds=0.5))
    assert (schp.frames_written, schp.people, schp.frames_without_person, schp.seconds) == (3, 4, [("00", "2")], 1.0)
    bkgd = BackgroundReport(written=["00"], frames_used=5, hole_fraction={"00": 0.1}, seconds=1.0).merge(
        BackgroundReport(written=["01"], complete=["02"], frames_used=4, hole_fraction={"01": 0.2}, seconds=2.0))
    assert bkgd.written == ["00", "01"] and bkgd.complete == ["02"] and bkgd.frames_used == 9
    assert bkgd.hole_fraction == {"00": 0.1, "01": 0.2} and bkgd.seconds == 2.0


def test_outcomes_of_shards_merge_into_the_whole_layout_in_natural_order(dataset):
    shards = [DatasetLayout.discover(dataset, shard=(i, 2)) for i in range(2)]
    merged = Outcome(shards[1], SchpReport(people=1)).merge(Outcome(shards[0], SchpReport(people=2)))
    assert merged.layout == DatasetLayout.discover(dataset) and merged.report.people == 3


def test_number_flags_take_their_interval_and_name_it():
    assert number_in(0, 1)("0.5") == 0.5 and number_in(0, 1, closed_low=True, closed_high=True)("1") == 1.0
    for parse, text, message in ((number_in(0, 1), "1", r"1.0 must be in \(0, 1\)"),
                                 (number_in(0, float("inf")), "inf", r"inf must be in \(0, inf\)"),
                                 (number_in(0, float("inf")), "nan", "nan must be in"),
                                 (number_in(0, 1), "x", "'x' is not a number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
