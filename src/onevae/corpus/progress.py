"""The progress bar of ``onevae tokenize``: clips/s and ETA (tqdm's), frames/s, tokens written, errors."""

from __future__ import annotations

import time

from .encoding import EncodedSample, Result


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="clip", desc="tokenize", disable=not enabled, dynamic_ncols=True)
        self.frames = self.tokens = self.errors = 0
        self.start = time.perf_counter()

    def update(self, result: Result) -> None:
        if isinstance(result, EncodedSample):
            self.frames += result.frames
            self.tokens += result.tokens
        else:
            self.errors += 1
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.frames / elapsed:.1f} frames/s, {self.tokens:,} tokens, {self.errors} errors",
                                 refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
