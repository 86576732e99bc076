"""Frame files named by a printf-style frame number (``frames/out_%05d.png``): the name syntax, shared by the
writers and the reader, and which files such a pattern names when it is read as a clip (no PIL or FFmpeg here).

* ``%d`` / ``%05d`` in the file name is the frame number (one, in the name only); ``%%`` is a literal ``%``.
* Written frames are numbered from 1, as FFmpeg's image muxer numbers them (:mod:`onevae.io.image_writer`).
* A pattern read as a clip names, as FFmpeg's image2 demuxer finds them, the files from the first existing number
  among 0 to 4 on, consecutive: a missing number ends the clip (:func:`find_frames`; :mod:`onevae.io.video`
  reads each file as it reads a still image).
* A name ending in a number of 3 or more digits looks like a frame (:func:`looks_numbered`): for hints only.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, OneVAEError

_FRAME_NUMBER = re.compile(r"%(0?\d*)d")
FIRST_NUMBERS = range(5)  # FFmpeg's image2 demuxer: the first frame is the first of the numbers 0..4 that exists
_TIME_EPS = 1e-6  # seconds: times closer than this are equal
_PADDED_NUMBER = re.compile(r"(.*?)(\d{3,})(\.[^.]+)")  # a name ending in a frame-like number: 00042.jpg


def frame_pattern(path: str | os.PathLike, role: str = "output") -> str | None:
    """The file name's printf-style frame number (``%05d``), or None for a single file; a name with several, or
    with another ``%`` directive, is refused (``%%`` is a literal ``%``). ``role`` names the path in the error."""
    name = Path(path).name
    plain = name.replace("%%", "")
    numbers = _FRAME_NUMBER.findall(plain)
    if len(numbers) > 1:
        raise OneVAEError(f"{role} {path}: the name has {len(numbers)} frame numbers; give one (e.g. out_%05d.png)")
    if "%" in _FRAME_NUMBER.sub("", plain):
        raise OneVAEError(f"{role} {path}: a '%' in the name must be a frame number (%d, %05d) or written '%%'")
    return f"%{numbers[0]}d" if numbers else None


def numbered(path: str | os.PathLike, number: int) -> Path:
    """The file of frame ``number`` of the pattern ``path``; a plain name is itself (``%%`` as ``%``)."""
    path = Path(path)
    name = _FRAME_NUMBER.sub(lambda m: m.group(0) % number, path.name.replace("%%", "\0"))
    return path.with_name(name.replace("\0", "%"))


def is_frame_sequence(path: str | os.PathLike) -> bool:
    """Whether an input path names frame files: no file has that very name (an existing ``50%.png`` is that file)
    and its name holds one frame number. A name with a stray ``%`` is not a pattern (it is a missing file)."""
    path = Path(path)
    if path.exists():
        return False
    try:
        return frame_pattern(path, "input") is not None
    except OneVAEError:
        return False


def holds_frames(pattern: str | os.PathLike) -> bool:
    """Whether the pattern's folder holds any file the pattern prints (whatever its number); no file is opened."""
    try:
        return bool(_numbers_present(Path(pattern)))
    except InputError:
        return False


def frame_at(seconds: float, fps: float) -> int:
    """The first frame of a sequence shot at ``fps`` shown at or after ``seconds`` (frame k is at k / fps)."""
    return max(0, math.ceil(seconds * fps - _TIME_EPS))


def looks_numbered(name: str) -> tuple[str, int] | None:
    """The pattern a file name looks like a frame of, and its number, when it ends in a number of 3 or more digits
    (``00042.jpg`` -> ``("%05d.jpg", 42)``, ``img_0007.png`` -> ``("img_%04d.png", 7)``), else None. For hints."""
    match = _PADDED_NUMBER.fullmatch(name)
    if match is None or "%" in name:
        return None
    return f"{match.group(1)}%0{len(match.group(2))}d{match.group(3)}", int(match.group(2))


@dataclass(frozen=True)
class FrameFiles:
    """The files a pattern names as a clip: numbers ``first`` .. ``first + count - 1``; ``after_gap`` is the first
    file numbered beyond a gap (not read: the gap ends the clip), if there is one."""

    pattern: Path
    first: int
    count: int
    after_gap: Path | None = None

    def path(self, index: int) -> Path:
        """The file of the clip's frame ``index`` (from 0)."""
        return numbered(self.pattern, self.first + index)


def find_frames(pattern: str | os.PathLike) -> FrameFiles:
    """The frames ``pattern`` names (see the module); InputError when it names no file, or none numbered 0..4. One
    listing of the folder; no file is opened."""
    pattern = Path(pattern)
    numbers = _numbers_present(pattern)
    if not numbers:
        raise InputError(f"{pattern}: no file matches this frame pattern (e.g. {numbered(pattern, 1)})")
    first = next((n for n in FIRST_NUMBERS if n in numbers), None)
    if first is None:
        raise InputError(f"{pattern}: the frames must start at a number from 0 to 4 (as FFmpeg reads patterns); the "
                         f"first file is {numbered(pattern, min(numbers))}")
    count = 1
    while first + count in numbers:
        count += 1
    later = [n for n in numbers if n > first + count]
    return FrameFiles(pattern, first, count, numbered(pattern, min(later)) if later else None)


def _numbers_present(pattern: Path) -> set[int]:
    """The frame numbers whose file exists, exactly as the pattern prints them (``%05d`` takes 00007, not 7)."""
    folder = pattern.parent if str(pattern.parent) else Path(".")
    parts = [re.escape(part.replace("\0", "%")) for part in _FRAME_NUMBER.split(pattern.name.replace("%%", "\0"))[::2]]
    matcher = re.compile(r"(\d+)".join(parts))
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{pattern}: no such folder {folder}") from None
    except PermissionError:
        raise InputError(f"{pattern}: the folder {folder} is not readable (permission denied)") from None
    numbers = set()
    for entry in entries:
        match = matcher.fullmatch(entry.name)
        if match and numbered(pattern, int(match.group(1))).name == entry.name and entry.is_file():
            numbers.add(int(match.group(1)))
    return numbers


def sequence_name(pattern: str | os.PathLike) -> str:
    """A name for the clip a pattern names (for output files): its file name without the frame number and extension
    (``out_%05d.png`` -> ``out``), else its folder's (``bear/%05d.jpg`` -> ``bear``)."""
    pattern = Path(pattern)
    stem = _FRAME_NUMBER.sub("", Path(pattern.name.replace("%%", "\0")).stem).replace("\0", "%").strip("_-. ")
    return stem or pattern.absolute().parent.name or "frames"
