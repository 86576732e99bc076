"""Model behaviour: execution modes, causality, images, padding, bad input."""

from __future__ import annotations

import pytest
import torch

from onevae import CONTINUOUS, DISCRETE, InputError, InputRangeWarning, PathPlan

from conftest import random_video, tiny_model

VARIANT_SIZES = {"888": (17, 32, 32), "81616_fe": (17, 64, 64), "161616_fe": (33, 64, 64), "wan": (9, 32, 32)}


@pytest.mark.parametrize("variant", ["888", "81616_fe", "161616_fe", "wan"])
def test_full_sequence_equals_streaming(variant):
    model = tiny_model(variant)
    t, h, w = VARIANT_SIZES[variant]
    tf = model.config.temporal_factor
    video = random_video(t + 2 * tf, h, w, seed=1)
    with torch.no_grad():
        full = model.encode_latents(video)
        for chunk in (tf, 2 * tf, 3 * tf):  # 3*tf leaves a shorter last chunk
            stream = model.encode_latents(video, mode="stream", chunk_frames=chunk)
            for a, b in zip(full.to_list(), stream.to_list()):
                assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
        decoded_full = model.decode_latents(full)
        for chunk in (1, 3):
            decoded_stream = model.decode_latents(full, mode="stream", chunk_latents=chunk)
            assert (decoded_full - decoded_stream).abs().max() <= 1e-5


@pytest.mark.parametrize("variant", ["888", "81616_fe", "161616_fe"])
def test_causality_later_chunk_changes_nothing_earlier(variant):
    model = tiny_model(variant)
    t, h, w = VARIANT_SIZES[variant]
    tf = model.config.temporal_factor
    video = random_video(1 + 2 * tf, h, w, seed=2)
    changed = video.clone()
    changed[:, :, 1 + tf :] = random_video(tf, h, w, seed=3)  # the last chunk only
    with torch.no_grad():
        lat_a, lat_b = model.encode_latents(video), model.encode_latents(changed)
        tok_a, tok_b = model.latents_to_tokens(lat_a), model.latents_to_tokens(lat_b)
        rec_a, rec_b = model.decode_tokens(tok_a), model.decode_tokens(tok_b)
    # latent frames 0 and 1 (frames 0 .. tf) do not see the last chunk; the last latent frame does
    assert torch.equal(lat_a.rest[:, :, :-1], lat_b.rest[:, :, :-1]) if variant == "888" else torch.equal(lat_a.first, lat_b.first)
    assert not torch.equal(lat_a.rest[:, :, -1], lat_b.rest[:, :, -1])
    assert torch.equal(tok_a.rest[:, :-1], tok_b.rest[:, :-1])
    assert torch.equal(rec_a[:, :, : 1 + tf], rec_b[:, :, : 1 + tf])
    assert not torch.equal(rec_a[:, :, 1 + tf :], rec_b[:, :, 1 + tf :])


@pytest.mark.parametrize("variant", ["888", "81616_fe", "161616_fe", "wan"])
def test_first_frame_latent_equals_image_alone(variant):
    model = tiny_model(variant)
    t, h, w = VARIANT_SIZES[variant]
    video = random_video(t, h, w, seed=4)
    with torch.no_grad():
        video_latents = model.encode_latents(video)
        image_latents = model.encode_latents(video[:, :, :1])
    assert (video_latents.to_list()[0][:, :, :1] - image_latents.to_list()[0]).abs().max() <= 1e-6
    if model.config.first_frame_highres:
        assert image_latents.rest.shape[2] == 0  # an image has no later frames


@pytest.mark.parametrize("variant", ["888", "81616_fe", "161616_fe", "wan"])
def test_single_image_encodes_and_decodes(variant):
    model = tiny_model(variant)
    _, h, w = VARIANT_SIZES[variant]
    image = random_video(1, h, w, seed=5)
    with torch.no_grad():
        for mode in ("full", "stream"):
            latents = model.encode_latents(image, mode=mode)
            video = model.decode_latents(latents, mode=mode)
            assert video.shape == image.shape
            if model.config.discrete:
                tokens = model.encode_tokens(image, mode=mode)
                assert model.decode_tokens(tokens, mode=mode).shape == image.shape
    # the image decodes to the first frame of the same content as a video
    with torch.no_grad():
        t = VARIANT_SIZES[variant][0]
        clip = torch.cat([image, random_video(t - 1, h, w, seed=6)], dim=2)
        assert (model.decode_latents(model.encode_latents(clip))[:, :, :1] - model.decode_latents(model.encode_latents(image))).abs().max() <= 1e-5


def test_invalid_sizes_are_refused_or_padded_and_cropped_back():
    model = tiny_model("888")
    video = random_video(13, 30, 27, seed=7)
    with pytest.raises(InputError, match=r"13 frames is not 1 \+ k\*8.*30x27 is not a multiple of 8.*pad=True"):
        model.encode_latents(video)
    padded, padding = model.pad_video(video)
    assert padded.shape[2:] == (17, 32, 32) and padding.to_dict() == {"frames": 4, "height": 2, "width": 5}
    assert torch.equal(padded[:, :, :13, :30, :27], video)
    assert torch.equal(padded[:, :, 16], padded[:, :, 12])  # last frame repeated
    with torch.no_grad():
        latents = model.encode_latents(video, pad=True)
        assert latents.rest.shape == (1, 16, 3, 4, 4) and latents.first is None
        recon = model.reconstruct(video)
    assert recon.shape == video.shape and recon.abs().max() <= 1


@pytest.mark.parametrize(
    "video,message",
    [
        (torch.zeros(3, 9, 32, 32), r"5 dimensions.*one clip\? add the batch dimension with video.unsqueeze\(0\)"),
        (torch.zeros(2, 3, 32, 32), r"a batch of images\? an image is a one-frame video: video.unsqueeze\(2\)"),
        (torch.zeros(3, 32, 32), r"one image\? video\[None, :, None\]"),
        (torch.zeros(9, 32, 32, 3), r"channels-last frames \(T, H, W, 3\)\? video.permute\(3, 0, 1, 2\)"),
        (torch.zeros(1, 3, 9, 32), "5 dimensions"),
        (torch.zeros(1, 4, 9, 32, 32), "3 channels"),
        (torch.zeros(1, 3, 0, 32, 32), "empty"),
        (torch.full((1, 3, 9, 32, 32), 255.0), r"\[-1, 1\].*x / 127.5 - 1"),
        (torch.zeros(1, 3, 9, 32, 32, dtype=torch.uint8), r"float.*x.float\(\) / 127.5 - 1"),
        (torch.full((1, 3, 9, 32, 32), float("nan")), "NaN"),
    ],
)
def test_bad_video_input_gives_clear_error(video, message):
    model = tiny_model("888")
    with pytest.raises(InputError, match=message):
        model.encode_tokens(video)


def test_bad_tokens_and_latents_give_clear_errors():
    model = tiny_model("81616_fe")
    with pytest.raises(InputError, match="2 grid"):
        model.decode_tokens([torch.zeros(1, 2, 4, 4, 2, dtype=torch.long)])
    with pytest.raises(InputError, match=r"\[0, 64000\)"):
        model.decode_tokens([torch.full((1, 1, 8, 8, 2), 70000), torch.zeros(1, 2, 4, 4, 2, dtype=torch.long)])
    with pytest.raises(InputError, match="twice the size"):
        model.decode_latents([torch.zeros(1, 16, 1, 4, 4), torch.zeros(1, 16, 2, 4, 4)])
    batches = "the first-frame and rest grids must hold the same clips, got batches of 2 and 1"  # was torch.cat's RuntimeError
    with pytest.raises(InputError, match=batches):
        model.decode_latents([torch.zeros(2, 16, 1, 8, 8), torch.zeros(1, 16, 2, 4, 4)], mode="stream")
    with pytest.raises(InputError, match=batches):
        model.decode_tokens([torch.zeros(2, 1, 8, 8, 2, dtype=torch.long), torch.zeros(1, 2, 4, 4, 2, dtype=torch.long)])
    with pytest.raises(InputError, match="continuous-only"):
        tiny_model("wan").encode_tokens(random_video(9, 32, 32))


def test_wrong_latents_and_token_dtypes_give_clear_errors():
    """What a user gets wrong when handing grids over: never a cryptic convolution error nor a NaN video."""
    model = tiny_model("888")
    video = random_video(9, 16, 16)
    latents = model.encode_latents(video)
    with pytest.raises(InputError, match="float tensors.*decode_tokens"):
        model.decode_latents([latents.rest.long()])
    with pytest.raises(InputError, match="NaN or infinite"):
        model.decode_latents([latents.rest * float("nan")])
    with pytest.raises(InputError, match="one position per frame"):
        model.decode_latents([latents.rest[..., :0, :]])
    with pytest.raises(InputError, match="positive multiple"):
        model.encode_latents(video, mode="stream", chunk_frames=-8)
    tokens = model.encode_tokens(video).rest
    # unsigned grids (the corpus shards store uint16) decode like int64; PyTorch has no min/max for uint16
    expected = model.decode_tokens([tokens])
    for dtype in (torch.uint16, torch.int32):
        torch.testing.assert_close(model.decode_tokens([tokens.to(dtype)]), expected, rtol=0, atol=0)
    with pytest.raises(InputError, match=r"\[0, 64000\)"):
        model.decode_tokens([torch.full_like(tokens, 65000).to(torch.uint16)])


def test_latents_encoded_under_inference_mode_decode_outside_it():
    """As diffusers' AutoencoderKLWan allows; autograd refused to save inference tensors for backward."""
    model = tiny_model("888")
    video = random_video(9, 16, 16)
    with torch.inference_mode():
        latents = model.encode_latents(video)
        expected = model.decode_latents(latents)
    torch.testing.assert_close(model.decode_latents(latents).detach(), expected, rtol=0, atol=0)


def test_a_video_in_0_1_warns_and_a_gradient_carrying_one_does_not():
    """A [0, 1] video lies inside [-1, 1], so it cannot be refused; it warns (it would encode washed out)."""
    model = tiny_model("888")
    video = random_video(9, 16, 16)
    with pytest.warns(InputRangeWarning, match=r"\[0, 1\].*video \* 2 - 1"):
        model.encode_latents((video + 1) / 2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither our warning nor torch's "requires_grad ... to a scalar"
        model.encode_latents(video.clone().requires_grad_())
        model.encode_latents(torch.zeros(1, 3, 9, 16, 16))  # a constant placeholder says nothing of its range


def test_streaming_encoder_accepts_any_piece_sizes_and_pads_the_end():
    from onevae import Latents, StreamingEncoder

    model = tiny_model("888")
    video = random_video(21, 32, 32, seed=8)  # 21 = 1 + 2*8 + 4: the end needs 4 padded frames
    encoder = StreamingEncoder(model, chunk_frames=8)
    parts = [encoder.push(video[:, :, a:b]) for a, b in ((0, 3), (3, 4), (4, 15), (15, 21))]
    tail, added = encoder.finish()
    assert parts[1] is None  # frames 3..4 complete no latent frame
    latents = Latents.cat([p for p in parts + [tail] if p is not None])
    assert added == 4
    with torch.no_grad():
        reference = model.encode_latents(video, pad=True)
    assert latents.rest.shape == reference.rest.shape == (1, 16, 4, 4, 4)
    assert (latents.rest - reference.rest).abs().max() <= 1e-5


def test_stream_pieces_of_another_size_or_bad_latents_are_refused_not_cropped_or_crashed():
    from onevae import Latents, StreamingDecoder, StreamingEncoder, TiledDecoder, TiledEncoder, Tiling

    model = tiny_model("888")
    video = random_video(9, 48, 48, seed=3)
    with torch.no_grad():
        latents = model.encode_latents(video)  # (1, 16, 2, 6, 6)
    other = "must have the batch size and frame size of the stream's first piece"
    encoder = StreamingEncoder(model)
    encoder.push(video[:, :, :1])
    with pytest.raises(InputError, match=r"\(1, 48, 48\) \(pixels\), got \(1, 48, 56\)"):
        encoder.push(random_video(8, 48, 56))  # was a RuntimeError of torch.cat, or a cache mismatch
    with pytest.raises(InputError, match=other):
        encoder.push(random_video(8, 48, 48, batch=2))
    tiled = TiledEncoder(model, Tiling(32, 8), 48, 48)
    with pytest.raises(InputError, match=r"\(1, 48, 48\) \(pixels\), got \(1, 64, 80\)"):
        tiled.push(random_video(1, 64, 80))  # was encoded as its top-left 48x48 corner, silently
    with pytest.raises(InputError, match=other):
        tiled.encode(random_video(9, 56, 48))
    with pytest.raises(InputError, match=r"\(1, 6, 6\) \(latent positions\), got \(1, 8, 10\)"):
        TiledDecoder(model, Tiling(32, 8), 6, 6).decode(Latents(torch.randn(1, 16, 2, 8, 10)))  # was cropped to 48x48
    decoder = StreamingDecoder(model)
    first = decoder.push(latents.frames(0, 1))
    assert first.shape == (1, 3, 1, 48, 48)
    with pytest.raises(InputError, match=other):
        decoder.push(Latents(torch.randn(1, 16, 1, 6, 7)))
    with pytest.raises(InputError, match="latents contain NaN"):  # decoded to a NaN video before, unlike decode_latents
        StreamingDecoder(model).push(Latents(latents.rest * float("nan")))
    with pytest.raises(InputError, match=r"latent grids must be \(B, 16, t, h, w\)"):
        StreamingDecoder(model).push(Latents(latents.rest[:, :4]))  # was a conv's RuntimeError


def test_streaming_memory_is_bounded_by_the_chunk():
    """The causal caches do not grow with the clip: same bytes after 3 and after 12 chunks."""
    from onevae import StreamingDecoder, StreamingEncoder

    model = tiny_model("888")
    sizes = {}
    for n_chunks in (3, 12):
        encoder, decoder = StreamingEncoder(model, chunk_frames=8), StreamingDecoder(model)
        decoder.push(encoder.push(random_video(1, 32, 32)))
        for i in range(n_chunks):
            decoder.push(encoder.push(random_video(8, 32, 32, seed=i)))
        sizes[n_chunks] = (encoder.cache.num_bytes(), decoder.cache.num_bytes())
    assert sizes[3] == sizes[12] and sizes[3][0] > 0


def test_gradients_reach_the_encoder_through_tokens():
    model = tiny_model("81616_fe").train()
    video = random_video(9, 64, 64, seed=9)
    out = model(video, DISCRETE)
    out.recon.square().mean().backward()
    assert model.model.encoder.conv1.weight.grad.abs().sum() > 0
    assert model.quant_conv.weight.grad.abs().sum() > 0
    tokens = out.paths[0].tokens
    assert tokens.first.shape == (1, 1, 8, 8, 2) and tokens.rest.shape == (1, 1, 4, 4, 2)


def test_forward_plans_share_one_encoding_and_match_the_inference_paths():
    """One forward pass: each plan decodes from the same latents; continuous/discrete match decode_latents/
    decode_tokens; alpha interpolates the decoder input; posterior noise changes only the continuous path."""
    model = tiny_model("81616_fe").eval()
    video = random_video(9, 64, 64, seed=10)
    half = PathPlan("discrete", 0.5, alpha=0.5)
    with torch.no_grad():
        out = model(video, [CONTINUOUS, DISCRETE, half])
        latents = model.encode_latents(video)
        tokens = model.latents_to_tokens(latents)
        assert [p.plan for p in out.paths] == [CONTINUOUS, DISCRETE, half]
        assert (out.paths[0].recon - model.decode_latents(latents)).abs().max() <= 1e-5
        assert (out.paths[1].recon - model.decode_tokens(tokens)).abs().max() <= 1e-4
        assert out.paths[0].tokens is None and torch.equal(out.paths[1].tokens.rest, tokens.rest)
        quantised = out.paths[1].decoder_input
        for mixed, m, q in zip(out.paths[2].decoder_input.to_list(), latents.to_list(), quantised.to_list()):
            assert (mixed - (m + q) / 2).abs().max() <= 1e-6
        sampled = model(video, CONTINUOUS, posterior_noise=torch.Generator().manual_seed(0))
        again = model(video, CONTINUOUS, posterior_noise=torch.Generator().manual_seed(0))
    assert not torch.equal(sampled.recon, out.paths[0].recon) and torch.equal(sampled.recon, again.recon)


def test_grids_pieces_round_trip():
    """Latents.chunks splits a clip for causal decoding (frame 0 first, with the high-res grid for fe models)
    and Latents.cat joins the pieces back."""
    from onevae import Latents, Tokens

    fe = Latents(rest=torch.randn(1, 4, 5, 2, 2), first=torch.randn(1, 4, 1, 4, 4))
    pieces = list(fe.chunks(2))
    assert [p.num_frames for p in pieces] == [1, 2, 2, 1] and pieces[0].first is not None
    assert all(p.first is None for p in pieces[1:])
    joined = Latents.cat(pieces)
    assert torch.equal(joined.rest, fe.rest) and torch.equal(joined.first, fe.first)
    plain = Tokens(rest=torch.zeros(1, 5, 2, 2, 2, dtype=torch.long))
    assert [p.rest.shape[1] for p in plain.chunks(3)] == [1, 3, 1]
    with pytest.raises(InputError, match="first piece"):
        Latents.cat([pieces[1], pieces[0]])


def test_grids_are_equal_when_their_tensors_are_and_are_not_hashable():
    """Tokens == Tokens raised 'Boolean value of Tensor with more than one value is ambiguous' (the dataclass
    compared the tensors elementwise); it is now True iff the class and every grid's shape and values agree."""
    from onevae import Latents, Tokens

    rest, first = torch.randint(0, 9, (1, 2, 2, 3, 2)), torch.randint(0, 9, (1, 1, 4, 6, 2))
    tokens = Tokens(rest=rest, first=first)
    assert tokens == Tokens(rest=rest.clone(), first=first.clone()) and not tokens != Tokens(rest=rest.clone(), first=first)
    assert tokens != Tokens(rest=rest.to(torch.int32), first=first.to(torch.uint16))  # the same dtypes too
    assert Tokens(rest=rest.to(torch.uint16)) == Tokens(rest=rest.to(torch.uint16))  # (no uint16 promotion is needed)
    changed = rest.clone()
    changed[0, 1, 1, 2, 1] += 1
    assert tokens != Tokens(rest=changed, first=first)  # one value
    assert tokens != Tokens(rest=rest)  # no first-frame grid
    assert tokens != Tokens(rest=rest.reshape(1, 2, 3, 2, 2), first=first)  # the same values in another shape
    assert tokens != Latents(rest=rest.float(), first=first.float()) and tokens != rest and tokens != [first, rest]
    assert Latents(rest=rest.float()) == Latents(rest=rest.float()) and Latents(rest=rest.float()) != Latents(rest=rest.float() + 1)
    for grids in (tokens, Latents(rest=rest.float())):
        with pytest.raises(TypeError, match="unhashable"):  # tensors are mutable: no hash can follow the values
            hash(grids)


def test_tokens_flatten_into_one_sequence_and_back_as_docs_tokens_md_says():
    from onevae.io.tokens import flatten_tokens, unflatten_tokens

    model = tiny_model("81616_fe")
    tokens = model.encode_tokens(random_video(9, 32, 32, batch=2))
    sequence = flatten_tokens(tokens)  # a Tokens, or its list form
    assert torch.equal(sequence, flatten_tokens(tokens.to_list())) and sequence.shape == (2, (1 * 4 * 4 + 1 * 2 * 2) * 2)
    grids = unflatten_tokens(sequence, [tuple(g.shape[1:]) for g in tokens.to_list()])
    assert all(torch.equal(a, b) for a, b in zip(grids, tokens.to_list()))
    torch.testing.assert_close(model.decode_tokens(grids), model.decode_tokens(tokens), rtol=0, atol=0)
    # a first-frame grid of 2 clips with a rest grid of 1 clip (8 tokens, reshaped to (2, 4)) was flattened into 2
    # sequences, each holding half of the one clip's rest tokens
    with pytest.raises(InputError, match=r"must hold the same clips, got batches of \[2, 1\]"):
        flatten_tokens([tokens.first, tokens.rest[:1]])
