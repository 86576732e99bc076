"""onevae tokenize / TokenShards / decoding generated sequences: engines and worker counts give the same bytes,
kill-and-resume equals an uninterrupted run, bad files end in errors.jsonl, and tokenize -> TokenShards -> decode
equals encode -> decode."""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_user_error, run_cli
from onevae import OneVAE, OneVAEConfig
from onevae.corpus import ManifestColumns, TokenizeOptions, tokenize_corpus
from onevae.data import TokenShards, collate_token_sequences, sample_token_grids
from onevae.errors import OneVAEError
from onevae.io.fit import fit_size
from onevae.io.tokens import flatten_tokens
from onevae.io.video import read_video
from onevae.pipeline import FitOptions, decode_to_video, encode_file

from media import make_bad_files, make_clip, smooth_frames, stored_sample_aspect

REPO = Path(__file__).resolve().parents[1]
TINY = dict(name="tiny-corpus", dim=8, z_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temporal_downsample=[False, True, True])


def output_bytes(out: Path) -> dict[str, bytes]:
    """Every file a run leaves (shards, index, errors, dataset.json, token counts), by name."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def model() -> OneVAE:
    torch.manual_seed(0)
    return OneVAE(OneVAEConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Five small clips of different lengths and sizes (not multiples of 8)."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "sub").mkdir()
    for i, (t, h, w) in enumerate([(13, 36, 44), (9, 32, 40), (21, 40, 36), (6, 30, 50), (17, 36, 44)]):
        make_clip(folder / "sub" / f"clip{i}.mp4" if i % 2 else folder / f"clip{i}.mp4", smooth_frames(t, h, w), fps=10)
    return folder


def clip_options(**changes) -> TokenizeOptions:
    return TokenizeOptions(**{**dict(clip_frames=5, stride=8, clips_per_shard=2, workers=0), **changes})


@pytest.fixture(scope="module")
def baseline(model, corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "out"
    tokenize_corpus(model, [str(corpus)], out, clip_options())
    return out


# ------------------------------------------------------------------------------------------------ output
def test_shards_hold_the_planned_clips_with_metadata_and_statistics(baseline):
    summary = json.loads((baseline / "dataset.json").read_text())
    # clips per video with 5-frame clips every 8 frames: 13 -> 2, 9 -> 1, 21 -> 3, 6 -> 1, 17 -> 2
    assert summary["counts"]["clips"] == summary["counts"]["clips_planned"] == 9
    assert summary["counts"]["errors"] == 0 and summary["counts"]["frames"] == 45
    assert summary["shards"] == [f"shard-{n:06d}.tar" for n in range(5)]
    samples = list(TokenShards(baseline))
    assert [s["key"] for s in samples] == [f"{n:09d}" for n in range(9)]
    first = samples[0]
    # 5 frames of 36x44 cropped to 32x40 -> latent (2, 4, 5) x 2 tokens
    assert first["meta"]["tokens"]["grid_shapes"] == [[2, 4, 5, 2]] and first["tokens"].shape == (80,)
    assert first["meta"]["tokens"]["dtype"] == "uint16" and first["meta"]["clip"]["start_frame"] == 0
    assert samples[1]["meta"]["clip"]["start_frame"] == 8 and samples[1]["meta"]["clip"]["start_s"] == pytest.approx(0.8)
    # 8 clips of 80 tokens, and the 30x50 clip (cropped to 24x48): 2 x 3 x 6 x 2 = 72
    assert summary["tokens"]["total"] == 8 * 80 + 72 == summary["counts"]["tokens"]
    assert summary["tokens"]["per_clip"] == {"min": 72, "mean": pytest.approx(712 / 9), "max": 80}
    counts = np.load(baseline / "token_counts.npy")
    assert counts.shape == (2, 64000) and counts.sum() == 712
    assert summary["tokens"]["codebook_usage"]["ids_used"] == int((counts.sum(0) > 0).sum())
    import pyarrow.parquet as pq

    index = pq.read_table(baseline / "index.parquet").to_pylist()
    assert [r["clip_id"] for r in index] == list(range(9)) and index[3]["shard"] == "shard-000001.tar"
    assert index[8]["shard"] == "shard-000004.tar" and index[8]["path"].endswith("sub/clip3.mp4") and index[8]["tokens"] == 72


@pytest.mark.slow
def test_worker_counts_give_identical_bytes(model, corpus, baseline, tmp_path):
    tokenize_corpus(model, [str(corpus)], tmp_path / "w2", clip_options(workers=2))
    assert output_bytes(tmp_path / "w2") == output_bytes(baseline)


@pytest.mark.slow
def test_ray_engine_gives_identical_bytes(model, corpus, baseline, tmp_path):
    pytest.importorskip("ray")
    tokenize_corpus(model, [str(corpus)], tmp_path / "ray", clip_options(engine="ray", workers=1))  # local Ray, 2 CPUs
    assert output_bytes(tmp_path / "ray") == output_bytes(baseline)


def test_rerun_skips_complete_shards_and_redoes_missing_ones(model, corpus, baseline, tmp_path):
    out = tmp_path / "out"
    tokenize_corpus(model, [str(corpus)], out, clip_options())
    (out / "shard-000002.tar").unlink()
    (out / "dataset.json").unlink()
    (out / ".shard-000003.tar.stale.tmp").write_bytes(b"half a shard")  # left by a killed run
    result = tokenize_corpus(model, [str(corpus)], out, clip_options())
    assert result.shards_written == 1
    assert output_bytes(out) == output_bytes(baseline)


def test_resume_takes_the_same_sources_spelled_otherwise_but_not_from_another_directory(model, corpus, baseline, tmp_path,
                                                                                         monkeypatch):
    out = tmp_path / "out"
    monkeypatch.chdir(corpus.parent)
    tokenize_corpus(model, [corpus.name], out, clip_options())  # a relative SOURCE
    (out / "shard-000001.tar").unlink()
    (out / "dataset.json").unlink()
    result = tokenize_corpus(model, [f"./{corpus.name}/"], out, clip_options())  # the same folder (tab completion)
    assert result.shards_written == 1 and result.summary["sources"] == [corpus.name]
    assert json.loads((out / "dataset.json").read_text())["sources"] == [corpus.name]
    (tmp_path / corpus.name).mkdir()  # the same relative name elsewhere: other files, refused
    (tmp_path / corpus.name / "clip0.mp4").write_bytes((corpus / "clip2.mp4").read_bytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OneVAEError, match=r"holds a run with other working directory \(.*; its SOURCEs are relative paths\)"):
        tokenize_corpus(model, [corpus.name], out, clip_options())
    with pytest.raises(OneVAEError, match="holds a run with other sources"):
        tokenize_corpus(model, [str(corpus / "sub")], out, clip_options())


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(model_dir, corpus, baseline, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "onevae.cli.main", "tokenize", str(corpus), "-o", str(out), "--model", str(model_dir),
            "--clip-frames", "5", "--stride", "8", "--clips-per-shard", "2", "--workers", "0", "--quiet"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "shard-000000.tar").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-2000:]
    written = sorted(p.name for p in out.glob("shard-*.tar"))
    assert 1 <= len(written) < 5 and not (out / "dataset.json").exists()
    resumed = run_cli(*args[3:])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert output_bytes(out) == output_bytes(baseline)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process that nobody has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_reader_processes_end_when_tokenize_is_killed(model_dir, corpus, tmp_path):
    """SIGKILL gives the readers no None task: they must notice the parent is gone instead of idling forever."""
    args = [sys.executable, "-m", "onevae.cli.main", "tokenize", str(corpus), "-o", str(tmp_path / "out"), "--model", str(model_dir),
            "--workers", "2", "--quiet"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    readers: list[int] = []
    while len(readers) < 2 and process.poll() is None and time.time() < deadline:  # (the resource tracker, + 2 readers)
        time.sleep(0.05)
        readers = [p for p in _children(process.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(readers) == 2, "the reader processes did not start"
    process.kill()
    process.wait()
    deadline = time.time() + 20
    while any(map(_running, readers)) and time.time() < deadline:
        time.sleep(0.1)
    alive = [p for p in readers if _running(p)]
    assert not alive, f"reader processes {alive} outlived the killed tokenizeoutlived the killed tokenize"


# ------------------------------------------------------------------------------------------------ sources
def test_bad_files_end_in_errors_jsonl_and_the_rest_is_tokenized(model, corpus, tmp_path):
    (tmp_path / "bad_inputs").mkdir()
    bad = make_bad_files(tmp_path / "bad_inputs")
    listing = tmp_path / "list.txt"
    good = sorted(corpus.rglob("*.mp4"))
    entries = [good[0], bad["missing"], bad["empty"], bad["half"], bad["1kb"], bad["sine.m4a"], bad["text_mp4"],
               bad["zero_frames"], good[1]]
    listing.write_text("\n".join(map(str, entries)) + "\n# a comment\n")
    result = tokenize_corpus(model, [str(listing)], tmp_path / "out", TokenizeOptions(workers=0, clips_per_shard=4))
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    failed = {e["source"]: e["error"] for e in errors}
    assert set(failed) == {str(p) for p in entries[1:-1]}, failed
    assert "no such file" in failed[str(bad["missing"])] and "empty" in failed[str(bad["empty"])]
    assert "only audio" in failed[str(bad["sine.m4a"])]
    counts = result.summary["counts"]
    assert counts["clips"] == 2 and counts["errors"] == 7
    assert [s["meta"]["source"]["path"] for s in TokenShards(tmp_path / "out")] == [str(good[0]), str(good[1])]


def test_manifest_with_times_and_columns_and_a_tar_shard_source(model, corpus, tmp_path):
    from onevae.data import write_shards

    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "start", "end", "caption", "score"])
        writer.writerow([str(corpus / "clip2.mp4"), "0.5", "1.8", "a wave", "0.7"])
        writer.writerow(["clip0.mp4", "", "", "relative path", "1"])
    (tmp_path / "clip0.mp4").write_bytes((corpus / "clip0.mp4").read_bytes())
    shards = write_shards([corpus / "clip4.mp4"], tmp_path / "videos", samples_per_shard=10)
    options = TokenizeOptions(workers=0, clip_frames=5, stride=5, columns=ManifestColumns(path="video"))
    tokenize_corpus(model, [str(manifest), str(shards[0])], tmp_path / "out", options)
    samples = list(TokenShards(tmp_path / "out"))
    first = samples[0]["meta"]
    assert first["columns"] == {"caption": "a wave", "score": "0.7"}
    assert first["clip"]["start_s"] == pytest.approx(0.5) and first["clip"]["frames"] == 5
    # 0.5 s .. 1.8 s at 10 fps: 13 frames -> 2 clips of 5; clip0 (13 frames) -> 2; the shard's clip4 (17) -> 3
    assert [s["meta"]["source"]["segment"] for s in samples] == [0, 0, 1, 1, 2, 2, 2]
    assert samples[2]["meta"]["columns"] == {"caption": "relative path", "score": "1"}
    tar_meta = samples[-1]["meta"]
    assert tar_meta["source"]["member"].endswith(".mp4") and tar_meta["columns"] == {"source": "clip4.mp4"}
    # the manifest clip holds the tokens of the file's frames from 0.5 s on (40x36 cropped to 40x32)
    direct, _ = read_video(corpus / "clip2.mp4", start_s=0.5, max_frames=5, geometry=fit_size(40, 36, 8, "crop"))
    expected = model.encode_tokens(direct.unsqueeze(0), mode="stream", chunk_frames=8)
    assert torch.equal(samples[0]["tokens"], flatten_tokens(expected.to_list())[0])


# ------------------------------------------------------------------------------------------------ round trip
def test_tokenize_then_token_shards_then_decode_equals_encode_then_decode(model, corpus, tmp_path):
    options = TokenizeOptions(workers=0, size_mode="pad", tokens=True, latents=True, latent_dtype="bfloat16")
    tokenize_corpus(model, [str(corpus / "clip0.mp4")], tmp_path / "out", options)
    [sample] = list(TokenShards(tmp_path / "out", latents=True))
    grids, meta = sample_token_grids(sample["tokens"], sample["meta"])
    fit = FitOptions(size_mode="pad")
    expected, expected_meta = encode_file(model, corpus / "clip0.mp4", fit, kind="tokens")
    expected = expected.to_list()
    assert len(grids) == len(expected) and all(torch.equal(a, b.long()) for a, b in zip(grids, expected))
    latents, _ = encode_file(model, corpus / "clip0.mp4", fit, kind="latents", latent_dtype=torch.bfloat16)
    latents = latents.to_list()
    assert all(torch.equal(a, b[0]) for a, b in zip(sample["latents"], latents))
    assert (meta.frames, meta.padded_frames, meta.fit) == (expected_meta.frames, expected_meta.padded_frames, expected_meta.fit)
    assert torch.equal(model.decode_tokens(grids, mode="stream"), model.decode_tokens([g.long() for g in expected], mode="stream"))
    decode_to_video(model, grids, meta, tmp_path / "from_shards.mp4")
    expected_meta.grid_shapes = [list(g.shape) for g in expected]  # as writing the token file records them
    decode_to_video(model, [g.long() for g in expected], expected_meta, tmp_path / "from_encode.mp4")
    a, _ = read_video(tmp_path / "from_shards.mp4")
    b, _ = read_video(tmp_path / "from_encode.mp4")
    assert a.shape == b.shape == (3, 13, 36, 44)  # the source size: the padding is cropped away
    # the decoded tensors are equal (above); threaded libx264 (onevae.io.writer) does not always give the same
    # bytes for the same frames, so the files are compared to codec rounding
    assert (a - b).abs().mean() < 2e-3


def test_a_clip_shorter_than_the_chunk_is_planned_for_its_own_frames_as_encode_plans_it(model, corpus, tmp_path, monkeypatch):
    """tokenize plans memory as onevae encode does (pipeline.piece_frames): the 13-frame clip streams frame 0, then
    12 frames, which fit this budget untiled. Planned for the whole --chunk, it was tiled (--chunk 4: other tokens)
    or refused (--chunk 1000: 'needs about 1.2 GiB even in tiles', the clip in errors.jsonl)."""
    from onevae.pipeline import _cache_bytes, _chunk_bytes

    clip = corpus / "clip0.mp4"  # 13 frames of 36x44, cropped to 32x40
    chunks = (4, 1000)
    untiled = {c: encode_file(model, clip, FitOptions(chunk_latents=c), kind="tokens")[0].to_list() for c in chunks}  # no limit
    budget = _chunk_bytes(model, 32, 40, 12) + _cache_bytes(model, 32, 40)  # frame 0 then 12 frames, untiled
    monkeypatch.setenv("ONEVAE_AVAILABLE_MEMORY", str(int(budget / 0.8) + 1))
    for chunk in chunks:
        out = tmp_path / f"chunk{chunk}"
        tokenize_corpus(model, [str(clip)], out, TokenizeOptions(workers=0, chunk_latents=chunk))
        assert json.loads((out / "dataset.json").read_text())["counts"]["errors"] == 0, (out / "errors.jsonl").read_text()
        [sample] = list(TokenShards(out))
        grids, _ = sample_token_grids(sample["tokens"], sample["meta"])
        encoded, _ = encode_file(model, clip, FitOptions(chunk_latents=chunk), kind="tokens")  # the same budget
        for expected in (untiled[chunk], encoded.to_list()):
            assert len(grids) == len(expected) and all(torch.equal(a, b.long()) for a, b in zip(grids, expected)), chunk


def test_an_anamorphic_clip_keeps_its_sample_aspect_ratio_from_shard_to_decoded_video(model, tmp_path):
    """Non-square pixels are tokenized as stored; the clip's metadata records their shape, and a clip decoded from
    the shards is tagged with it, so that it shows as the source does."""
    source = make_clip(tmp_path / "dv.mp4", smooth_frames(9, 32, 40), fps=10, sample_aspect_ratio=Fraction(32, 27))
    tokenize_corpus(model, [str(source)], tmp_path / "out", TokenizeOptions(workers=0, size_mode="pad"))
    [sample] = list(TokenShards(tmp_path / "out"))
    assert sample["meta"]["source"]["sample_aspect_ratio"] == "32:27"
    grids, meta = sample_token_grids(sample["tokens"], sample["meta"])
    decode_to_video(model, grids, meta, tmp_path / "decoded.mp4")
    assert stored_sample_aspect(tmp_path / "decoded.mp4") == Fraction(32, 27)


def test_decode_to_video_refuses_a_shard_clip_of_another_model(model, baseline, tmp_path):
    sample = next(iter(TokenShards(baseline)))
    grids, meta = sample_token_grids(sample["tokens"], sample["meta"])
    torch.manual_seed(1)
    other = OneVAE(OneVAEConfig(**TINY)).eval()  # the same architecture, other weights: the ids mean other things
    with pytest.raises(OneVAEError, match=r"clip0.mp4 was encoded by model 'tiny-corpus' \(fingerprint [0-9a-f]{16}\), not by"):
        decode_to_video(other, grids, meta, tmp_path / "other.mp4")
    assert not (tmp_path / "other.mp4").exists()
    assert decode_to_video(model, grids, meta, tmp_path / "same.mp4") == 5


def test_token_shards_split_across_ranks_and_workers(baseline):
    from torch.utils.data import DataLoader

    keys = []
    for rank in range(2):
        loader = DataLoader(TokenShards(baseline, rank=rank, world_size=2), batch_size=2, num_workers=2,
                            collate_fn=functools.partial(collate_token_sequences, pad_id=64000))
        keys.append([k for batch in loader for k in batch["keys"]])
    assert not set(keys[0]) & set(keys[1])
    assert sorted(keys[0] + keys[1]) == [f"{n:09d}" for n in range(9)]


def test_collate_pads_sequences_of_different_lengths():
    samples = [{"key": "a", "tokens": torch.arange(3), "meta": {}}, {"key": "b", "tokens": torch.arange(5), "meta": {}}]
    with pytest.raises(OneVAEError, match="pad_id"):
        collate_token_sequences(samples)
    batch = collate_token_sequences(samples, pad_id=64000)
    assert batch["tokens"].tolist() == [[0, 1, 2, 64000, 64000], [0, 1, 2, 3, 4]]
    assert batch["mask"].sum().item() == 8


def test_docs_example_trains_an_autoregressive_model_on_token_shards(baseline, monkeypatch):
    text = (REPO / "docs" / "corpus.md").read_text()
    code = re.search(r"<!-- example: token-shards -->\s*```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(baseline.parent)
    namespace: dict = {}
    exec(compile(code.replace('"tokens/"', repr(str(baseline))), "docs/corpus.md", "exec"), namespace)
    losses = namespace["losses"]
    assert len(losses) >= 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]


# ------------------------------------------------------------------------------------------------ decode sequences
def test_decode_flattened_sequences_api_and_cli(model, model_dir, tmp_path):
    from onevae.sequences import decode_token_sequence, sequence_grid

    grid = sequence_grid(model.config, frames=9, size=(16, 24))
    assert grid.shapes == [(3, 2, 3, 2)] and grid.length == 36
    assert sequence_grid(model.config, grid=(3, 2, 3)) == grid
    sequence = torch.randint(0, 64000, (2, 36), generator=torch.Generator().manual_seed(0))
    video = decode_token_sequence(model, sequence, frames=9, size=(16, 24))
    grids = [sequence.reshape(2, 3, 2, 3, 2)]
    assert torch.allclose(video, model.decode_tokens(grids), atol=1e-5) and video.shape == (2, 3, 9, 16, 24)

    np.save(tmp_path / "one.npy", sequence[0].numpy().astype(np.uint16))
    result = run_cli("decode", str(tmp_path / "one.npy"), "--frames", "9", "--size", "16x24", "-o", str(tmp_path / "one.mp4"),
                     "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    decoded, _ = read_video(tmp_path / "one.mp4")
    assert decoded.shape == (3, 9, 16, 24)
    torch.save({"tokens": sequence}, tmp_path / "batch.pt")
    (tmp_path / "videos").mkdir()
    result = run_cli("decode", str(tmp_path / "batch.pt"), "--grid", "3,2,3", "-o", str(tmp_path / "videos"), "--model", str(model_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["clip-00000.mp4", "clip-00001.mp4"]

    from safetensors.torch import save_file

    save_file({"tokens": sequence[:1, :35].contiguous()}, str(tmp_path / "short.safetensors"))
    assert_user_error(run_cli("decode", str(tmp_path / "short.safetensors"), "--grid", "3,2,3", "-o", str(tmp_path / "x.mp4"),
                              "--model", str(model_dir)), "has 35 tokens per clip")
    np.save(tmp_path / "big.npy", np.full(36, 64000, dtype=np.int64))
    assert_user_error(run_cli("decode", str(tmp_path / "big.npy"), "--grid", "3,2,3", "-o", str(tmp_path / "x.mp4"),
                              "--model", str(model_dir)), "must lie in [0, 64000)")
    assert_user_error(run_cli("decode", str(tmp_path / "one.npy"), "--frames", "8", "--size", "16x24", "-o", str(tmp_path / "x.mp4"),
                              "--model", str(model_dir)), "8 frames is not 1 + k*4")
    assert_user_error(run_cli("decode", str(tmp_path / "one.npy"), "-o", str(tmp_path / "x.mp4"), "--model", str(model_dir)),
                      "give the sequence's grid")
    assert not (tmp_path / "x.mp4").exists()


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.slow
def test_bad_tokenize_inputs_end_in_one_line(model_dir, corpus, baseline, tmp_path):
    common = ["--model", str(model_dir), "--workers", "0", "--quiet"]
    assert_user_error(run_cli("tokenize", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o1"), *common), "no such file")
    (tmp_path / "nopath.csv").write_text("file,caption\na.mp4,x\n")
    assert_user_error(run_cli("tokenize", str(tmp_path / "nopath.csv"), "-o", str(tmp_path / "o2"), *common), "has no 'path' column")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert_user_error(run_cli("tokenize", str(tmp_path / "broken.parquet"), "-o", str(tmp_path / "o3"), *common), "not a readable Parquet")
    assert_user_error(run_cli("tokenize", str(tmp_path / "*.mkv"), "-o", str(tmp_path / "o4"), *common), "matches no video")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # (root can write anywhere)
            assert_user_error(run_cli("tokenize", str(corpus), "-o", str(locked / "out"), *common), "cannot create the output folder")
    finally:
        locked.chmod(0o700)
    # the baseline folder holds shards of another model (random weights, seed 1)
    torch.manual_seed(1)
    OneVAE(OneVAEConfig(**TINY)).save_pretrained(tmp_path / "other")
    copy = tmp_path / "copy"
    __import__("shutil").copytree(baseline, copy)
    other = ["--model", str(tmp_path / "other"), "--workers", "0", "--quiet", "--clip-frames", "5", "--stride", "8", "--clips-per-shard", "2"]
    assert_user_error(run_cli("tokenize", str(corpus), "-o", str(copy), *other), "holds shards of another model")
    assert output_bytes(copy) == output_bytes(baseline)
    ok = run_cli("tokenize", str(corpus), "-o", str(copy), *other, "--overwrite")
    assert ok.returncode == 0, ok.stderr
    assert output_bytes(copy)["shard-000000.tar"] != output_bytes(baseline)["shard-000000.tar"]
    assert_user_error(run_cli("tokenize", str(corpus), "-o", str(tmp_path / "o5"), *common, "--clip-frames", "6"), "is not 1 + k*4")


def test_disk_full_leaves_no_half_shard(model, corpus, tmp_path, monkeypatch):
    import errno

    import webdataset

    class FullDisk(webdataset.TarWriter):
        def write(self, obj):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(webdataset, "TarWriter", FullDisk)
    with pytest.raises(OneVAEError, match="disk full while writing .*shard-000000.tar"):
        tokenize_corpus(model, [str(corpus / "clip0.mp4")], tmp_path / "out", TokenizeOptions(workers=0))
    assert not list((tmp_path / "out").glob("shard-*")) and not list((tmp_path / "out").glob(".*.tmp"))


def test_disk_full_after_the_shards_names_the_file_and_a_rerun_completes(model, corpus, baseline, tmp_path, monkeypatch):
    import errno

    import onevae.corpus.finalize as finalize

    def full_disk(array):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(finalize, "npy_bytes", full_disk)
        with pytest.raises(OneVAEError, match=r"disk full while writing .*token_counts.npy \(nothing half-written"):
            tokenize_corpus(model, [str(corpus)], tmp_path / "out", clip_options())
    assert not (tmp_path / "out" / "token_counts.npy").exists() and not list((tmp_path / "out").glob(".*.tmp"))
    result = tokenize_corpus(model, [str(corpus)], tmp_path / "out", clip_options())
    assert result.shards_written == 0 and output_bytes(tmp_path / "out") == output_bytes(baseline)


def test_sources_folders_globs_lists_csv_and_parquet_manifests(corpus, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from onevae.corpus import expand_sources

    folder = [s.path for s in expand_sources([str(corpus)])]
    assert folder == [str(corpus / n) for n in ("clip0.mp4", "clip2.mp4", "clip4.mp4", "sub/clip1.mp4", "sub/clip3.mp4")]
    assert [s.path for s in expand_sources([str(corpus / "**" / "clip[13].mp4")])] == folder[3:]
    (tmp_path / "list.txt").write_text(f"{corpus / 'clip2.mp4'}\n\n# comment\n{corpus / 'sub'}\n")
    assert [s.path for s in expand_sources([str(tmp_path / "list.txt")])] == folder[1:2] + folder[3:]
    rows = {"path": [folder[0], folder[1]], "start": [0.5, None], "end": [1.5, None], "caption": ["a", "b"], "n": [1, 2]}
    pq.write_table(pa.table(rows), tmp_path / "m.parquet")
    with open(tmp_path / "m.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(rows))
        writer.writerows([[folder[0], 0.5, 1.5, "a", 1], [folder[1], "", "", "b", 2]])
    from_parquet = expand_sources([str(tmp_path / "m.parquet")])
    from_csv = expand_sources([str(tmp_path / "m.csv")])
    assert [(s.path, s.start_s, s.end_s) for s in from_parquet] == [(s.path, s.start_s, s.end_s) for s in from_csv]
    assert from_parquet[0].columns == {"caption": "a", "n": 1} and from_csv[0].columns == {"caption": "a", "n": "1"}
    (tmp_path / "bad.csv").write_text("path,start,end\nx.mp4,2,1\n")
    with pytest.raises(OneVAEError, match="is not after"):
        expand_sources([str(tmp_path / "bad.csv")])



def test_a_segment_listed_twice_is_warned_of_once(corpus, tmp_path):
    """The same file twice (a folder and a list naming one of its files) is tokenized twice, with one warning;
    the same range with other columns (a second caption) is not a repeat."""
    import warnings

    from onevae.corpus import expand_sources

    (tmp_path / "list.txt").write_text(f"{corpus / 'clip2.mp4'}\n")
    with pytest.warns(UserWarning, match=r"1 segment\(s\) are listed more than once .*clip2.mp4.*each copy is tokenized again"):
        assert len(expand_sources([str(corpus), str(tmp_path / "list.txt")])) == 6
    (tmp_path / "m.csv").write_text(f"path,caption\n{corpus / 'clip2.mp4'},a cat\n{corpus / 'clip2.mp4'},a small cat\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [s.columns for s in expand_sources([str(tmp_path / "m.csv")])] == [{"caption": "a cat"}, {"caption": "a small cat"}]


def test_an_output_path_that_is_a_file_is_refused(model, corpus, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(OneVAEError, match="cannot create the output folder"):
        tokenize_corpus(model, [str(corpus)], tmp_path / "taken", TokenizeOptions(workers=0))
    assert (tmp_path / "taken").read_text() == "not a folder"


# ------------------------------------------------------------------------------------------------ decoding clips by key
def frames_of(path: Path) -> np.ndarray:
    from onevae.io.video import iter_video_frames

    return np.stack(list(iter_video_frames(path)))  # (T, H, W, 3) uint8


def test_decode_writes_a_corpus_clip_by_key_exactly_as_decoding_its_sample(model, model_dir, baseline, tmp_path, capsys):
    """`onevae decode OUT --key K` is TokenShards -> sample_token_grids -> decode_to_video for that clip (lossless
    files compared pixel for pixel); keys in any order, short or padded; a shard gives every clip it holds."""
    from onevae.cli.main import main
    from onevae.data.token_shards import corpus_keys, read_clips

    samples = {s["key"]: s for s in TokenShards(baseline)}
    key = sorted(samples)[3]
    grids, meta = sample_token_grids(samples[key]["tokens"], samples[key]["meta"])
    decode_to_video(model, grids, meta, tmp_path / "api.mkv", lossless=True)
    common = ["--model", str(model_dir), "--quiet"]
    assert main(["decode", str(baseline), "--key", str(int(key)), "-o", str(tmp_path / "cli.mkv"), "--lossless", *common]) == 0
    assert f"clip {key} -> {tmp_path / 'cli.mkv'}: 5 frames at 10 fps" in capsys.readouterr().err
    np.testing.assert_array_equal(frames_of(tmp_path / "cli.mkv"), frames_of(tmp_path / "api.mkv"))

    wanted = [sorted(samples)[4], sorted(samples)[0]]
    assert [s["key"] for s in read_clips(baseline, [int(k) for k in wanted])] == wanted  # in the order given
    assert main(["decode", str(baseline), "--key", wanted[0], "--key", wanted[1], "-o", str(tmp_path / "two"), *common]) == 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(f"{k}.mp4" for k in wanted)

    shard = baseline / "shard-000001.tar"
    in_shard = [s["key"] for s in TokenShards([shard])]
    assert sorted(corpus_keys(shard)) == sorted(in_shard) and corpus_keys(baseline)[in_shard[0]] == shard
    assert main(["decode", str(shard), "-o", str(tmp_path / "shard"), *common]) == 0
    assert sorted(p.name for p in (tmp_path / "shard").iterdir()) == sorted(f"{k}.mp4" for k in in_shard)
    assert f"{len(in_shard)} clips (KEY.mp4)" in capsys.readouterr().err


def test_decode_of_a_corpus_refuses_what_it_cannot_do_before_writing_anything(baseline, model_dir, tmp_path):
    common = ["--model", str(model_dir), "--quiet"]
    last = sorted(s["key"] for s in TokenShards(baseline))[-1]
    assert_user_error(run_cli("decode", str(baseline), "-o", str(tmp_path / "all"), *common),
                      "is a whole corpus: name the clips with --key")
    assert_user_error(run_cli("decode", str(baseline), "--key", "999", "-o", str(tmp_path / "x.mp4"), *common),
                      f"has no clip 000000999 (its {int(last) + 1} clips are 000000000 ... {last})")
    assert_user_error(run_cli("decode", str(baseline), "--key", "0", "--latents", "-o", str(tmp_path / "x.mp4"), *common),
                      "clip 000000000 has no latents (onevae tokenize wrote its tokens only)")
    assert_user_error(run_cli("decode", str(baseline), "--key", "x1", "-o", str(tmp_path / "x.mp4"), *common), "is not a clip id")
    other = tmp_path / "other"
    torch.manual_seed(1)
    OneVAE(OneVAEConfig(**TINY)).eval().save_pretrained(other)
    assert_user_error(run_cli("decode", str(baseline), "--key", "0", "-o", str(tmp_path / "x.mp4"), "--model", str(other)),
                      "was encoded by model 'tiny-corpus'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_decode_reads_a_corpus_of_latents_and_finds_keys_without_its_index(model, model_dir, corpus, tmp_path):
    import shutil

    from onevae.cli.main import main
    from onevae.data.token_shards import corpus_keys, sample_latent_grids

    out = tmp_path / "out"
    tokenize_corpus(model, [str(corpus / "clip0.mp4")], out, TokenizeOptions(workers=0, tokens=False, latents=True))
    [sample] = list(TokenShards(out, latents=True))
    grids, meta = sample_latent_grids(sample["latents"], sample["meta"])
    decode_to_video(model, grids, meta, tmp_path / "api.mkv", lossless=True)
    assert main(["decode", str(out), "--key", "0", "--latents", "-o", str(tmp_path / "cli.mkv"), "--lossless",
                 "--model", str(model_dir), "--quiet"]) == 0
    np.testing.assert_array_equal(frames_of(tmp_path / "cli.mkv"), frames_of(tmp_path / "api.mkv"))
    assert frames_of(tmp_path / "cli.mkv").shape == (13, 32, 40, 3)  # the clip's 13 frames, cropped to 32x40
    assert main(["decode", str(out), "--key", "0", "-o", str(tmp_path / "t.mp4"), "--model", str(model_dir), "--quiet"]) == 2
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for index in ("index.parquet", "index.jsonl"):
        (copy / index).unlink(missing_ok=True)
    assert corpus_keys(copy) == {k: copy / v.name for k, v in corpus_keys(out).items()} == {"000000000": copy / "shard-000000.tar"}


# ------------------------------------------------------------------------------------------------ numbered frames
def save_frames(folder: Path, numbers, h: int = 20, w: int = 28, name: str = "%05d.png") -> None:
    """Smooth frames as image files ``name % n``, one for each of ``numbers`` (frame k of the motion for the k-th)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for n, frame in zip(numbers, smooth_frames(len(numbers), h, w)):
        Image.fromarray(frame).save(folder / (name % n))


@pytest.fixture(scope="module")
def davis(tmp_path_factory) -> Path:
    """A DAVIS-like tree: JPEGImages/480p/{bear: 9 frames, cat: 13 frames of 24x36, empty, notes: no frame}."""
    root = tmp_path_factory.mktemp("davis") / "JPEGImages" / "480p"
    save_frames(root / "bear", range(9))
    save_frames(root / "cat", range(13), h=24, w=36)
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no frames here")
    return root


def grids_of(sample) -> list[torch.Tensor]:
    return sample_token_grids(sample["tokens"], sample["meta"])[0]


def test_a_frame_pattern_segment_has_the_tokens_encode_gives_at_the_rate_given(model, davis, tmp_path):
    """A pattern is one clip, never resampled: --fps is the rate its frames were shot at (default 25)."""
    import pyarrow.parquet as pq

    pattern = davis / "cat" / "%05d.png"
    for fps, rate in ((None, 25.0), (12.0, 12.0)):
        out = tmp_path / f"fps{fps}"
        tokenize_corpus(model, [str(pattern)], out, TokenizeOptions(workers=0, size_mode="pad", fps=fps, max_frames=11))
        [sample] = list(TokenShards(out))
        expected, expected_meta = encode_file(model, pattern, FitOptions(size_mode="pad", fps=fps, max_frames=11), kind="tokens")
        expected = expected.to_list()
        grids = grids_of(sample)
        assert len(grids) == len(expected) and all(torch.equal(a, b.long()) for a, b in zip(grids, expected))
        meta = sample["meta"]
        assert meta["fps"] == rate and meta["clip"] == {"start_frame": 0, "frames": 11, "start_s": 0.0,
                                                        "end_s": pytest.approx(11 / rate)}
        assert meta["padded_frames"] == expected_meta.padded_frames == 2  # 11 -> 13 = 1 + 3 x 4
        source = meta["source"]
        assert (source["path"], source["codec"], source["fps"], source["num_frames"], source["is_frame_sequence"]) == \
            (str(pattern), "png", rate, 13, True)
        [row] = pq.read_table(out / "index.parquet").to_pylist()
        assert (row["path"], row["fps"], row["frames"], row["height"], row["width"]) == (str(pattern), rate, 11, 24, 40)


def test_a_glob_over_frame_folders_gives_one_segment_per_folder_holding_frames(model, davis, tmp_path):
    from onevae.corpus import expand_sources

    source = str(davis / "*" / "%05d.png")
    assert [s.path for s in expand_sources([source])] == [str(davis / "bear" / "%05d.png"), str(davis / "cat" / "%05d.png")]
    out = tmp_path / "out"
    tokenize_corpus(model, [source], out, clip_options(stride=4))
    samples = list(TokenShards(out))
    # 5-frame clips every 4 frames: bear (9 frames) -> 0, 4; cat (13) -> 0, 4, 8
    assert [(s["meta"]["source"]["segment"], s["meta"]["clip"]["start_frame"]) for s in samples] == \
        [(0, 0), (0, 4), (1, 0), (1, 4), (1, 8)]
    assert json.loads((out / "dataset.json").read_text())["counts"]["errors"] == 0
    cat = davis / "cat" / "%05d.png"
    assert samples[3]["meta"]["clip"]["start_s"] == pytest.approx(4 / 25)
    direct, _ = read_video(cat, start_s=4 / 25, max_frames=5, geometry=fit_size(24, 36, 8, "crop"))
    expected = model.encode_tokens(direct.unsqueeze(0), mode="stream", chunk_frames=8)
    assert torch.equal(samples[3]["tokens"], flatten_tokens(expected.to_list())[0])
    tokenize_corpus(model, [source], tmp_path / "w2", clip_options(stride=4, workers=2))
    assert output_bytes(tmp_path / "w2") == output_bytes(out)


@pytest.mark.slow
def test_ray_engine_reads_frame_folders_as_the_local_engine_does(model, davis, tmp_path):
    pytest.importorskip("ray")
    source = [str(davis / "*" / "%05d.png")]
    tokenize_corpus(model, source, tmp_path / "local", clip_options(stride=4))
    tokenize_corpus(model, source, tmp_path / "ray", clip_options(stride=4, engine="ray", workers=1))
    assert len(list(TokenShards(tmp_path / "ray"))) == 5
    assert output_bytes(tmp_path / "ray") == output_bytes(tmp_path / "local")


def test_a_manifest_row_names_a_pattern_with_start_and_end(model, davis, tmp_path):
    """Frame k of a sequence is shot at k / fps: 0.1 s .. 0.5 s at 25 fps are frames 3 .. 12 (10 frames)."""
    manifest = davis.parent / "manifest.csv"
    manifest.write_text("path,start,end,caption\n480p/cat/%05d.png,0.1,0.5,a cat\n")
    out = tmp_path / "out"
    tokenize_corpus(model, [str(manifest)], out, TokenizeOptions(workers=0, clip_frames=5))
    samples = list(TokenShards(out))
    assert [s["meta"]["clip"]["start_s"] for s in samples] == [pytest.approx(0.12), pytest.approx(0.32)]
    assert samples[1]["meta"]["clip"]["end_s"] == pytest.approx(0.52) and samples[0]["meta"]["columns"] == {"caption": "a cat"}
    direct, _ = read_video(davis / "cat" / "%05d.png", start_s=0.1, max_frames=5, geometry=fit_size(24, 36, 8, "crop"))
    expected = model.encode_tokens(direct.unsqueeze(0), mode="stream", chunk_frames=8)
    assert torch.equal(samples[0]["tokens"], flatten_tokens(expected.to_list())[0])
    # at 10 fps the same times are frames 1 .. 4: fewer than 5, so no clip and a line in errors.jsonl
    tokenize_corpus(model, [str(manifest)], tmp_path / "fps10", TokenizeOptions(workers=0, clip_frames=5, fps=10))
    [error] = [json.loads(line) for line in (tmp_path / "fps10" / "errors.jsonl").read_text().splitlines()]
    assert error["error"].endswith("4 frame(s), fewer than --clip-frames 5")


def test_a_gap_ends_a_frame_folder_and_frames_from_5_on_are_an_error(model, tmp_path):
    from onevae.io.video import VideoReadWarning

    root = tmp_path / "frames"
    save_frames(root / "a", [1, 2, 3, 4, 5, 6, 8, 9])  # 7 is missing: the clip is frames 1..6
    save_frames(root / "b", range(7, 12))  # FFmpeg's image2 starts at 0..4 only
    with pytest.warns(VideoReadWarning, match="00007.png is missing, so the clip ends after 6 frames"):
        tokenize_corpus(model, [str(root / "*" / "%05d.png")], tmp_path / "out", TokenizeOptions(workers=0, clip_frames=5))
    [sample] = list(TokenShards(tmp_path / "out"))
    assert sample["meta"]["source"]["num_frames"] == 6 and sample["meta"]["clip"]["frames"] == 5
    [error] = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert error["source"] == str(root / "b" / "%05d.png") and "the frames must start at a number from 0 to 4" in error["error"]


def test_a_folder_of_numbered_frames_is_read_file_by_file_with_one_hint(tmp_path):
    import warnings

    from PIL import Image

    from onevae.corpus import expand_sources

    def images(folder: Path, names) -> None:
        folder.mkdir(parents=True)
        for name in names:
            Image.new("RGB", (4, 4)).save(folder / name)

    root = tmp_path / "JPEGImages"
    for clip in ("bear", "cat", "dog"):
        images(root / "480p" / clip, [f"{n:05d}.jpg" for n in range(34)])  # 102 frames in all
    hint = f'onevae tokenize "{root}/*/*/%05d.jpg"'
    with pytest.warns(UserWarning, match=re.escape(f"{root}: 102 images named as numbered frames are each tokenized as "
                                                   f"a one-frame clip; to read each folder of frames as one clip, give "
                                                   f"a pattern: {hint}")) as caught:
        assert len(expand_sources([str(root)])) == 102  # a folder keeps its meaning: each image a clip
    assert len(caught) == 1
    quiet = tmp_path / "quiet"
    images(quiet / "a", [f"{n:05d}.jpg" for n in range(50)])
    images(quiet / "b", [f"{n:05d}.jpg" for n in range(50)])  # 100: not more than FRAME_HINT_COUNT
    images(quiet / "photos", [f"IMG_{n:04d}.jpg" for n in range(101, 300)])  # numbered, but not from 0..4
    images(quiet / "singles", [f"{n:03d}_{k:03d}.jpg" for n in range(5) for k in (n,)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(expand_sources([str(quiet)])) == 100 + 199 + 5


def test_bad_frame_pattern_sources_end_in_one_line(model_dir, davis, tmp_path):
    common = ["-o", str(tmp_path / "out"), "--model", str(model_dir), "--workers", "0", "--quiet"]
    assert_user_error(run_cli("tokenize", str(davis / "*" / "%04d.png"), *common),
                      f"SOURCE {davis / '*' / '%04d.png'}: no file matches this frame pattern (e.g. {davis / '*' / '0001.png'})")
    assert_user_error(run_cli("tokenize", str(davis / "bear" / "f_%03d.png"), *common), "no file matches this frame pattern")
    assert not (tmp_path / "out").exists()
