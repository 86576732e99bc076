"""The training data configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..errors import InputError

DATA_KINDS = ("files", "webdataset", "procedural")


@dataclass
class DataConfig:
    """Where clips come from and how they are cut.

    ``sources``: folders (searched recursively), media files, text files listing paths (``.txt``/``.lst``), or for
    ``kind="webdataset"`` tar shards (paths, folders, globs or ``shard-{000000..000009}.tar`` ranges).
    ``exclude``: file-name patterns never used; by default the evaluation clip ``carphone_pristine``.
    ``num_frames`` must be ``1 + k * temporal_factor``; ``fps=None`` keeps the source frame rate.
    """

    sources: list[str] = field(default_factory=list)
    kind: str = "files"
    num_frames: int = 17
    height: int = 256
    width: int = 256
    fps: Optional[float] = None
    temporal_factor: int = 8
    random_crop_scale: tuple[float, float] = (0.6, 1.0)
    hflip: bool = True
    images_as_clips: bool = True
    simulate_motion: bool = False
    num_workers: int = 2
    batch_size: int = 1
    seed: int = 0
    exclude: list[str] = field(default_factory=lambda: ["carphone_pristine*"])
    num_samples: int = 1000  # procedural clips per epoch

    def __post_init__(self) -> None:
        self.random_crop_scale = tuple(float(x) for x in self.random_crop_scale)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` for values that cannot work."""
        if self.kind not in DATA_KINDS:
            raise InputError(f"data kind must be one of {', '.join(DATA_KINDS)}, got {self.kind!r}")
        if self.kind != "procedural" and not self.sources:
            raise InputError(f"data kind {self.kind!r} needs at least one entry in sources")
        for name in ("num_frames", "height", "width", "temporal_factor", "batch_size", "num_samples"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"data {name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise InputError(f"data num_workers must be >= 0, got {self.num_workers}")
        if self.fps is not None and not self.fps > 0:
            raise InputError(f"data fps must be positive or None, got {self.fps}")
        low, high = self.random_crop_scale
        if not 0 < low <= high <= 1:
            raise InputError(f"random_crop_scale must satisfy 0 < low <= high <= 1, got {self.random_crop_scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        """Build from a mapping (e.g. a YAML section); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown data option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)
