"""Which device scoring runs on, and how a result names it.

One place, because every scorer (standard, requests, federated) and the
reference builder must agree: a result says which machine made it, and CUDA
timings only mean something after the device has finished its queued work.
"""

from __future__ import annotations

import platform

import torch


def default_device() -> torch.device:
    """CUDA when there is one: scoring is device-agnostic and the GPU is simply faster."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU and its thread count (timings depend on both)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so a wall-clock timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
