"""Accelerators a task asks for: ``Resources(gpu=...)`` takes a count, ``"A100:2"``, or one of these ``Device`` values.

Locally a device request is recorded (and sizes engines where they can use it); on Kubernetes it becomes the pod's
extended resource and node selection.
"""

from __future__ import annotations

from typing import Literal

import msgspec

DeviceClass = Literal["GPU", "TPU", "NEURON", "AMD_GPU", "HABANA_GAUDI", "APPLE_SILICON"]
_DEVICE_CLASSES = ("GPU", "TPU", "NEURON", "AMD_GPU", "HABANA_GAUDI", "APPLE_SILICON")

GPU_TYPES = ("A2", "A10", "A10G", "A100", "A100_80G", "B200", "H100", "H200", "L4", "L40s", "T4", "V100",
             "RTX_PRO_4500", "RTX_PRO_6000", "GB10", "T4 shared", "L4 shared", "A10G shared", "A10 shared",
             "L40S shared")
TPU_TYPES = ("V5E", "V5P", "V6E")
NEURON_TYPES = ("Inf1", "Inf2", "Trn1", "Trn1n", "Trn2", "Trn2u")
AMD_GPU_TYPES = ("MI100", "MI210", "MI250", "MI250X", "MI300A", "MI300X", "MI325X", "MI350X", "MI355X")


class Device(msgspec.Struct, frozen=True):
    """``quantity`` accelerators of ``device_class``, optionally of one model (``device``) and partition (a MIG
    profile such as ``"1g.5gb"``, a TPU topology such as ``"2x2"``)."""

    quantity: int
    device_class: DeviceClass
    device: str | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 1:
            raise ValueError(f"Device.quantity: expected an int >= 1, got {self.quantity!r}")
        if self.device_class not in _DEVICE_CLASSES:
            raise ValueError(f"Device.device_class: {self.device_class!r}; allowed: {', '.join(_DEVICE_CLASSES)}")


def _check(kind: str, device: str, allowed: tuple[str, ...]) -> None:
    if device not in allowed:
        raise ValueError(f"{kind}(device=...): {device!r}; allowed: {', '.join(allowed)}")


def GPU(device: str, quantity: int, partition: str | None = None) -> Device:  # noqa: N802 - flyte-sdk's name
    """``quantity`` (1-8) NVIDIA GPUs of type ``device`` (``"A100"``, ``"H100"``, ``"T4"``...)."""
    _check("GPU", device, GPU_TYPES)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 8:
        raise ValueError(f"GPU(quantity=...): expected 1 to 8, got {quantity!r}")
    return Device(quantity, "GPU", device, partition)


def TPU(device: str, partition: str | None = None) -> Device:  # noqa: N802
    """A Google TPU slice of type ``device`` (``"V5E"``, ``"V5P"``, ``"V6E"``), ``partition`` its topology."""
    _check("TPU", device, TPU_TYPES)
    return Device(1, "TPU", device, partition)


def Neuron(device: str) -> Device:  # noqa: N802
    """An AWS Inferentia/Trainium device (``"Inf2"``, ``"Trn1"``...)."""
    _check("Neuron", device, NEURON_TYPES)
    return Device(1, "NEURON", device)


def AMD_GPU(device: str) -> Device:  # noqa: N802
    """An AMD Instinct GPU (``"MI300X"``...)."""
    _check("AMD_GPU", device, AMD_GPU_TYPES)
    return Device(1, "AMD_GPU", device)


def HABANA_GAUDI(device: str) -> Device:  # noqa: N802
    """An Intel Habana Gaudi accelerator (``"Gaudi1"``)."""
    _check("HABANA_GAUDI", device, ("Gaudi1",))
    return Device(1, "HABANA_GAUDI", device)


def APPLE_SILICON() -> Device:  # noqa: N802
    """An Apple silicon GPU."""
    return Device(1, "APPLE_SILICON")


def device_count(gpu: int | str | Device | None) -> int:
    """How many accelerators a ``Resources.gpu`` value asks for (``"A100:2"`` -> 2, ``"A100_80G:1-8"`` -> 1)."""
    if gpu is None:
        return 0
    if isinstance(gpu, Device):
        return gpu.quantity
    if isinstance(gpu, int):
        return gpu
    tail = gpu.rsplit(":", 1)[1] if ":" in gpu else "1"
    return int(tail.split("-")[0].split("|")[0])
