"""Segmentation of people in multi-view and video capture datasets (EasyVolcap layout)."""

__version__ = "0.1.0"
