"""``InputSpec``: how an image becomes the model's input, decided once per run and recorded in its checkpoint.

Training, the feature cache, ``eval``, ``export`` and ``spinalnet.load``/``predict`` all read this one object;
none of them works it out again from the options or the data. It has two halves:

- the **stored image** (``channels``, ``size``): what a file is decoded into (:mod:`spinalnet.data.images`),
  the images the run was trained on as they sit in memory;
- the **device transform** (:meth:`InputSpec.transform`): the centre ``crop`` a pretrained backbone's recipe
  takes, normalisation with ``mean``/``std``, resizing to ``model_size`` (bilinear, antialiased) and repeating
  grey to ``model_channels``; augmentation happens there too, in training only.

``classes`` names the model's outputs, index by index (the class-to-index map: a folder's sub-folders in sorted
order, a registry dataset's documented names, or the labels themselves).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spinalnet.errors import UsageError

FORMAT = 1


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: tuple[int, int]
    model_channels: int
    model_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: float = 1.0
    classes: tuple[str, ...] = ()
    #: whose statistics ``mean``/``std`` are, for the log: "the training split's" or "the pretrained backbone's own"
    normalisation: str = "the training split's"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of a stored image: what :func:`spinalnet.load`'s model and an export take."""
        return (self.channels, *self.size)

    def transform(self, augment=None):
        """The device transform (:class:`~spinalnet.data.augment.DeviceTransform`), with ``augment`` in training."""
        from spinalnet.data.augment import AugmentSpec, DeviceTransform

        return DeviceTransform(self.mean, self.std, augment or AugmentSpec(), size=self.model_size,
                               channels=self.model_channels, crop=self.crop)

    def decode(self, source: Any):
        """A file or PIL image as a stored image (uint8 ``(C, H, W)``), as the run's own images were stored."""
        from spinalnet.data.images import decode

        return decode(source, self.channels, self.size)

    def describe(self) -> list[str]:
        """The lines a run prints about its input."""
        c, (h, w) = self.channels, self.size
        steps = []
        if self.crop < 1.0:
            steps.append(f"centre {self.crop:.3g} of each side")
        if (self.model_channels, *self.model_size) != (c, h, w):
            steps.append(f"resized on the device to {self.model_channels} x {self.model_size[0]} x {self.model_size[1]}")
        stats = lambda v: "/".join(f"{x:.3f}" for x in v)  # noqa: E731
        return [f"  input: {c} x {h} x {w} stored" + (f"; {', '.join(steps)}" if steps else ""),
                f"  normalisation: {self.normalisation} mean {stats(self.mean)}, std {stats(self.std)}"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": FORMAT, **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InputSpec":
        if not isinstance(data, dict) or data.get("format", FORMAT) > FORMAT:
            raise UsageError("the recorded input preprocessing was written by a newer spinalnet; upgrade to read it")
        return cls(int(data["channels"]), tuple(data["size"]), int(data["model_channels"]), tuple(data["model_size"]),
                   tuple(data["mean"]), tuple(data["std"]), float(data.get("crop", 1.0)),
                   tuple(data.get("classes") or ()), data.get("normalisation", "the training split's"))
