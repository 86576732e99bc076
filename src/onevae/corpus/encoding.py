"""The model's side: clips (as parts from the readers) -> sample members. One instance per device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model_adapter import ClipEncoder, grid_names
from .reading import ClipFailure, Message
from .samples import sample_members


@dataclass
class EncodedSample:
    clip_id: int
    members: dict[str, bytes]
    frames: int
    tokens: int


Result = EncodedSample | ClipFailure


@dataclass(frozen=True)
class EncodeSettings:
    tokens: bool = True
    latents: bool = False
    latent_dtype: str = "float16"  # float16 | bfloat16
    chunk_latents: int = 2


class EncodeStage:
    """Feeds each clip's parts to its own streaming encoder; a final part gives the clip's sample."""

    def __init__(self, model, settings: EncodeSettings, fingerprint: str) -> None:
        self.model, self.settings = model, settings
        config = model.config
        self.model_info = {"name": config.name, "fingerprint": fingerprint}
        self.vocab_size = config.vocab_size
        self.grid_names = grid_names(model)
        self.open: dict[int, ClipEncoder] = {}

    def handle(self, message: Message) -> Result | None:
        if isinstance(message, ClipFailure):
            self.open.pop(message.clip_id, None)
            return message
        encoder = self.open.get(message.clip_id)
        if encoder is None:  # a clip in one part (a --clip-frames clip, or a video within one read window of
            # --chunk) says its length, so memory is planned for its own frames; a longer one needs the whole chunk
            s = self.settings
            frames = int(message.meta["clip"]["frames"]) if message.final else None
            encoder = self.open[message.clip_id] = ClipEncoder(
                self.model, s.chunk_latents, s.tokens, s.latents, getattr(torch, s.latent_dtype), clip_frames=frames)
        try:
            if message.frames.shape[0]:
                encoder.push(message.as_video())
            if not message.final:
                return None
            encoded = encoder.finish()
        except Exception as error:  # noqa: BLE001 - one clip's failure must not stop the corpus
            self.open.pop(message.clip_id, None)
            return ClipFailure(message.clip_id, f"encoding failed: {type(error).__name__}: {error}")
        del self.open[message.clip_id]
        members = sample_members(encoded, message.meta, self.model_info, self.vocab_size, self.grid_names)
        tokens = sum(g.numel() for g in encoded.tokens) if encoded.tokens is not None else 0
        return EncodedSample(message.clip_id, members, int(message.meta["clip"]["frames"]), tokens)

    def fail_open(self, reason: str) -> list[ClipFailure]:
        """Clips begun but never finished (their reader died)."""
        failures = [ClipFailure(clip_id, reason) for clip_id in sorted(self.open)]
        self.open.clear()
        return failures
