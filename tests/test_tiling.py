"""Spatial tiling (combined with streaming) and the reduced-precision paths.

Quality targets at 720p (PSNR within 0.05 dB of untiled, seam figure <= 1.05x untiled, flat memory) are measured
by benchmarks/bench_tiling.py; the tests here check behaviour, exactness where it must hold, and looser bounds
on the shipped model.
"""

from __future__ import annotations

import pytest
import torch

from onevae import InputError, OneVAE, Tiling
from onevae.eval import psnr_per_frame, seam_figure
from onevae.io import read_video, sample_video_path
from onevae.streaming import blend_ramp, tile_borders, tile_starts

from conftest import random_video, tiny_model


def test_tile_starts_cover_the_span_and_ramps_are_positive():
    assert tile_starts(100, 128, 32) == [0]
    assert tile_starts(256, 128, 32) == [0, 96, 128]
    for size, tile, overlap in ((256, 128, 32), (720, 256, 64), (1280, 256, 0)):
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == size and all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    ramp = blend_ramp(8, 16, 64, 4)
    assert ramp.min() > 0 and torch.equal(ramp[:4], ramp[4:].flip(0)) and torch.all(ramp[1:4] > ramp[:3])  # up, then down
    assert torch.equal(blend_ramp(8, 0, 8, 4), torch.ones(8))  # a tile alone keeps weight 1
    assert tile_borders(256, Tiling(128, 32)) == [96, 128, 224]  # starts 0, 96, 128; ends 128, 224, 256


@pytest.mark.parametrize("variant", ["888", "81616_fe"])
def test_one_tile_is_exactly_untiled_and_stream_equals_full(variant):
    model = tiny_model(variant)
    sf = model.config.spatial_factor
    video = random_video(9, 4 * sf, 6 * sf, seed=1)
    with torch.no_grad():
        plain = model.encode_latents(video)
        model.enable_tiling(tile=6 * sf, overlap=sf)  # the frame fits in one tile
        one = model.encode_latents(video)
        model.enable_tiling(tile=4 * sf, overlap=2 * sf)  # three tiles across
        full, stream = model.encode_latents(video), model.encode_latents(video, mode="stream", chunk_frames=8)
        decoded_full = model.decode_latents(full)
        decoded_stream = model.decode_latents(full, mode="stream", chunk_latents=1)
    for a, b in zip(plain.to_list(), one.to_list()):
        assert torch.equal(a, b)
    for a, b in zip(full.to_list(), stream.to_list()):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
    assert decoded_full.shape == video.shape and (decoded_full - decoded_stream).abs().max() <= 1e-5


def test_blending_constant_tiles_gives_the_constant():
    """Normalised blending: whatever the overlaps, equal tiles blend to themselves."""
    from onevae.streaming import _Blender

    blender = _Blender(40, 56, overlap=8)
    for top in tile_starts(40, 16, 8):
        for left in tile_starts(56, 16, 8):
            blender.add(torch.full((2, 16, 16), 0.25), top, left)
    assert torch.allclose(blender.result(torch.float32), torch.full((2, 40, 56), 0.25))


def test_tiled_reconstruction_of_real_video_is_close_and_seamless():
    """The shipped model on a real clip: tiles of 64 px with 32 px overlap stay within 0.3 dB of the untiled
    reconstruction and add no visible seam (looser than the 720p benchmark targets: the frame is small)."""
    model = OneVAE.from_pretrained(None)
    video = read_video(sample_video_path("carphone_pristine"), max_frames=9)[0][:, :, :144, :176].unsqueeze(0)  # (1, 3, 9, 144, 176)
    untiled = model.reconstruct(video)
    tiling = Tiling(64, 32)
    model.enable_tiling(tiling.tile, tiling.overlap)
    tiled = model.reconstruct(video)
    gap = float(psnr_per_frame(video, untiled).mean() - psnr_per_frame(video, tiled).mean())
    assert abs(gap) < 0.3, gap
    rows, cols = tile_borders(144, tiling), tile_borders(176, tiling)
    assert seam_figure(tiled, rows, cols) <= 1.1 * seam_figure(untiled, rows, cols)


def test_seam_figure_sees_a_seam():
    smooth = torch.linspace(-1, 1, 64).expand(1, 3, 2, 64, 64).clone()  # (1, 3, 2, 64, 64), a horizontal ramp
    seamed = smooth.clone()
    seamed[..., 32:] += 0.2
    assert seam_figure(smooth, [32], [32]) == pytest.approx(1.0, abs=0.02)  # no seam: the border lines look like the rest
    assert seam_figure(seamed, [32], [32]) > 3 * seam_figure(smooth, [32], [32])


@pytest.mark.parametrize("tile,overlap,message", [(60, 16, "multiples"), (16, 0, "too small"), (64, 64, r"\[0, tile\)"), (64, 12, "multiples")])
def test_bad_tiles_are_refused(tile, overlap, message):
    model = tiny_model("888")
    with pytest.raises(InputError, match=message):
        model.enable_tiling(tile, overlap)


def test_a_tile_given_alone_overlaps_by_a_quarter():
    """enable_tiling(tile=64) alone once kept the default's 96-pixel overlap and was refused (overlap > tile)."""
    model = tiny_model("888")
    for tile, overlap in ((64, 16), (256, 64), (384, 96), (200, 48)):
        model.enable_tiling(tile=tile)
        assert (model.tiling.tile, model.tiling.overlap) == (tile, overlap)
    model.enable_tiling()
    assert (model.tiling.tile, model.tiling.overlap) == (384, 96)


def test_decode_precision_leaves_tokens_unchanged_and_costs_little():
    """bfloat16 decoding: same tokens (FSQ runs in float32), reconstruction within 0.5 dB of float32 on real
    video with the shipped model; bfloat16 encoding shifts latents more than decoding does. A 5 x 72 x 88 crop of
    carphone's face: bfloat16 convolutions are ~20x slower than float32 on CPUs without AVX-512 (the whole
    9 x 144 x 176 clip took 170 s on the 2-core CI-like machine; the crop 14 s, with the same 0.001 dB gap)."""
    model = OneVAE.from_pretrained(None)
    video = read_video(sample_video_path("carphone_pristine"), max_frames=5)[0][:, :, 36:108, 44:132].unsqueeze(0)
    with torch.no_grad():
        latents = model.encode_latents(video)
        tokens = model.latents_to_tokens(latents)
        reference = model.decode_tokens(tokens).clamp(-1, 1)
        model.set_precision(decode=torch.bfloat16)
        assert model.decode_dtype == torch.bfloat16 and model.encode_dtype == torch.float32
        assert torch.equal(model.encode_tokens(video).rest, tokens.rest)
        bf16 = model.decode_tokens(tokens).float().clamp(-1, 1)
        model.set_precision(encode=torch.bfloat16)
        bf16_latents = model.encode_latents(video)
    psnr_ref, psnr_bf16 = psnr_per_frame(video, reference).mean(), psnr_per_frame(video, bf16).mean()
    assert abs(float(psnr_ref - psnr_bf16)) < 0.5
    latent_shift = (bf16_latents.rest.float() - latents.rest).abs().mean() / latents.rest.abs().mean()
    assert 0 < latent_shift < 0.1


def test_float16_gives_no_nan():
    model = tiny_model("81616_fe")
    model.set_precision(encode=torch.float16, decode=torch.float16)
    video = random_video(9, 64, 64, seed=3)
    with torch.no_grad():
        tokens = model.encode_tokens(video)
        out = model.decode_tokens(tokens)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_channels_last_gives_the_same_numbers():
    model = tiny_model("81616_fe")
    video = random_video(9, 64, 64, seed=4)
    with torch.no_grad():
        reference = model.decode_tokens(model.encode_tokens(video))
        model.set_memory_format(torch.channels_last_3d)
        conv = model.model.encoder.conv1
        assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
        tokens = model.encode_tokens(video)
        out = model.decode_tokens(tokens)
    assert torch.allclose(out, reference, atol=1e-5)
    model.set_memory_format(torch.contiguous_format)
    assert conv.weight.is_contiguous()
    with pytest.raises(InputError, match="memory format"):
        model.set_memory_format(torch.channels_last)


def test_compiled_model_gives_the_same_numbers_and_keeps_its_weight_names():
    """torch.compile of the encoder and decoder (the eager backend here: the CPU test machine has no time to
    run inductor; the GPU benchmark compiles for real)."""
    model = tiny_model("888")
    names = list(model.state_dict())
    video = random_video(9, 32, 32, seed=5)
    with torch.no_grad():
        reference = model.reconstruct(video)
        model.compile(backend="eager")
        out = model.reconstruct(video)
    assert torch.allclose(out, reference, atol=1e-6)
    assert list(model.state_dict()) == names


def test_whole_clips_go_tile_by_tile_with_the_same_numbers_as_frame_by_frame():
    """encode/decode of a whole clip run tile-major (one tile's caches alive at a time, so memory does not grow
    with the frame's area); the frame-major push path (files) gives the same latents and frames."""
    from onevae.streaming import TiledDecoder, TiledEncoder, _encode_whole

    model = tiny_model("81616_fe")
    video = random_video(9, 96, 128, seed=6)  # 81616_fe: 8 frames per chunk, 16 pixels per position; 6 tiles
    tiling = Tiling(64, 32)
    with torch.no_grad():
        tile_major = TiledEncoder(model, tiling, 96, 128, chunk_frames=8).encode(video)
        frame_major_encoder = TiledEncoder(model, tiling, 96, 128, chunk_frames=8)
        frame_major = _encode_whole(frame_major_encoder, video, frame_major_encoder.chunk)
        assert torch.equal(tile_major.rest, frame_major.rest) and torch.equal(tile_major.first, frame_major.first)
        decoder = TiledDecoder(model, tiling, *frame_major.spatial_size)
        frames = decoder.decode(frame_major, chunk_latents=1)
        assert torch.equal(frames, torch.cat(list(TiledDecoder(model, tiling, *frame_major.spatial_size).iter_decode(frame_major, 1)), dim=2))
        assert all(not d.cache._state for d in decoder.decoders)  # whole clips never touch the push-mode decoders


def test_files_are_encoded_tile_by_tile_in_memory_bounded_by_the_tile(tmp_path, monkeypatch):
    """A frame whose causal caches (for every tile at once) would not fit: encode_file runs the tiles one after
    the other over the file, reading it once per tile, and gives exactly the in-memory tile-by-tile tokens."""
    from onevae.io import probe_video
    from onevae.pipeline import FitOptions, _cache_bytes, _windows, encode_file, plan_geometry, plan_tiling

    from media import make_clip, smooth_frames

    model = tiny_model("888")
    path = make_clip(tmp_path / "clip.mp4", smooth_frames(9, 96, 128))
    options = FitOptions(chunk_latents=1)
    budget = _cache_bytes(model, 96, 128) // 2  # the caches of a whole frame alone exceed it
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(int(budget / 0.8)))
    with pytest.raises(InputError, match="GiB"):  # frame by frame (as decode streams) it cannot run
        plan_tiling(model, 96, 128, 8)
    tiling = plan_tiling(model, 96, 128, 8, tile_by_tile=True)
    assert tiling is not None and tiling.tile < 128
    grids, meta = encode_file(model, path, options)
    info = probe_video(path)
    video = torch.cat(list(_windows(path, model, info, plan_geometry(model, info, options), options)), dim=2)
    model.enable_tiling(tiling.tile, tiling.overlap)
    with torch.no_grad():
        expected = model.encode_tokens(video, mode="stream", chunk_frames=8)
    assert torch.equal(grids.rest, expected.rest) and meta.frames == 9


def test_corpus_clips_too_large_for_every_tiles_caches_are_encoded_tile_by_tile(monkeypatch):
    """onevae tokenize's ClipEncoder: frames pushed piece by piece, kept, and encoded tile by tile at finish
    with exactly the tokens of the in-memory tile-by-tile path; a clip that would not fit is refused clearly."""
    from onevae.corpus.model_adapter import ClipEncoder
    from onevae.pipeline import _cache_bytes, plan_tiling

    model = tiny_model("888")
    video = random_video(9, 96, 128, seed=8)
    budget = _cache_bytes(model, 96, 128) // 2  # the caches of a whole frame alone exceed it
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(int(budget / 0.8)))
    tiling = plan_tiling(model, 96, 128, 8, tile_by_tile=True)
    encoder = ClipEncoder(model, 1, tokens=True, latents=False, latent_dtype=torch.float16)
    for start, stop in ((0, 1), (1, 6), (6, 9)):
        encoder.push(video[:, :, start:stop])
    assert encoder.kept is not None  # kept for tile-by-tile encoding, not streamed
    encoded = encoder.finish()
    model.enable_tiling(tiling.tile, tiling.overlap)
    with torch.no_grad():
        expected = model.encode_tokens(video, mode="stream", chunk_frames=8)
    assert torch.equal(encoded.tokens[0], expected.rest) and encoded.padded_frames == 0
    model.disable_tiling()
    encoder = ClipEncoder(model, 1, tokens=True, latents=False, latent_dtype=torch.float16)
    frame_bytes = 3 * 96 * 128 * 4
    with pytest.raises(InputError, match="--clip-frames"):  # a clip longer than half the memory cannot be kept
        for _ in range(int(budget // frame_bytes) + 2):
            encoder.push(video[:, :, :1])


def test_files_too_large_for_every_tiles_caches_are_decoded_tile_by_tile_through_a_disk_canvas(tmp_path):
    from onevae.pipeline import _canvas_chunks, _decoded_canvas
    from onevae.streaming import TiledDecoder

    model = tiny_model("888")
    with torch.no_grad():
        latents = model.encode_latents(random_video(9, 96, 128, seed=7))
        expected = TiledDecoder(model, Tiling(64, 32), 12, 16).decode(latents, 1)
        out = tmp_path / "o.mp4"
        with _decoded_canvas(TiledDecoder(model, Tiling(64, 32), 12, 16), latents, 1, out) as canvas:
            assert [p.name for p in tmp_path.iterdir()] == [".o.mp4.canvas"]
            pieces = list(_canvas_chunks(canvas, 8))
    assert [p.shape[2] for p in pieces] == [8, 1] and torch.equal(torch.cat(pieces, dim=2), expected)
    assert list(tmp_path.iterdir()) == []  # the canvas file is gone


def test_frame_by_frame_planning_counts_every_tiles_caches_overlaps_included(monkeypatch):
    """Frame by frame, overlapping tiles keep caches for about 2x the frame's area (1080p in 256/64 tiles:
    1.9x); the planner counted the frame's area only, so it chose frame-by-frame runs that need twice the memory
    it planned. With a budget between the two, it now goes tile by tile."""
    from onevae.pipeline import _cache_bytes_per_pixel, _chunk_bytes, plan_streaming, plan_tiling

    assert Tiling(256, 64).covered_area(1080, 1920) == 6 * 256 * 10 * 256
    assert Tiling(64, 32).covered_area(96, 128) == 2 * 64 * 3 * 64 and Tiling(384, 96).covered_area(96, 128) == 96 * 128
    model = tiny_model("888")
    model.enable_tiling(64, 32)
    frame_and_chunk = _cache_bytes_per_pixel(model) * 96 * 128 + _chunk_bytes(model, 64, 64, 8)
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(int(1.3 * frame_and_chunk / 0.8)))  # below the tiles' 2x
    with pytest.raises(InputError, match="GiB even in tiles"):
        plan_tiling(model, 96, 128, 8)
    assert plan_streaming(lambda tbt: plan_tiling(model, 96, 128, 8, tbt), 96, 128) == (Tiling(64, 32), True)
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(int(2.2 * frame_and_chunk / 0.8)))
    assert plan_streaming(lambda tbt: plan_tiling(model, 96, 128, 8, tbt), 96, 128) == (Tiling(64, 32), False)
