"""Training data pipeline: file datasets, tar shards, synthetic clips, DataLoader workers."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from onevae.data import (
    DataConfig,
    DataWarning,
    ProceduralVideoDataset,
    VideoClipDataset,
    WebDatasetClips,
    build_dataset,
    collate_clips,
    expand_shards,
    list_media_files,
    write_shards,
)
from onevae.errors import InputError
from onevae.io import sample_video_path, write_video

SIZE = (32, 48)


def moving_frames(t: int, h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a bright square moving over a gradient."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, int(rng.integers(0, 255)))], -1).astype(np.uint8)
    frames = np.repeat(base[None], t, axis=0)
    for i in range(t):
        frames[i, 10:30, 2 * i : 2 * i + 20] = 255
    return frames


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    """good clips (one nested, one .gz), a too-short clip, a corrupt file, a still image, the evaluation clip."""
    d = tmp_path_factory.mktemp("media")
    (d / "nested").mkdir()
    write_video(d / "good.mp4", moving_frames(24), fps=24)
    write_video(d / "nested" / "other.mov", moving_frames(20, seed=1), fps=24)
    write_video(d / "short.mp4", moving_frames(5), fps=24)
    (d / "corrupt.mp4").write_bytes(b"\x00\x01 definitely not a video " * 100)
    (d / "notes.txt").write_text("ignored: not media")
    Image.fromarray(moving_frames(1, 50, 70)[0]).save(d / "still.png")
    write_video(d / "box.tmp.mp4", moving_frames(12, seed=2), fps=12)
    (d / "box.mp4.gz").write_bytes(gzip.compress((d / "box.tmp.mp4").read_bytes()))
    (d / "box.tmp.mp4").unlink()
    shutil.copy(sample_video_path("carphone_pristine"), d / "carphone_pristine.mp4")
    return d


def make_dataset(media_dir: Path, **overrides) -> VideoClipDataset:
    options = dict(num_frames=9, size=SIZE, temporal_factor=8, seed=0)
    options.update(overrides)
    with pytest.warns(DataWarning, match="skipped"):
        return VideoClipDataset(media_dir, **options)


def video_paths(dataset: VideoClipDataset) -> list[str]:
    return sorted(e.path.name for e in dataset.entries)


def test_corrupt_and_short_files_are_skipped_and_counted(media_dir):
    with pytest.warns(DataWarning, match=r"skipped 2 of 6 file\(s\)") as caught:
        dataset = VideoClipDataset(media_dir, num_frames=9, size=SIZE, temporal_factor=8)
    assert len(caught) == 1  # one warning for the whole indexing
    assert dataset.num_skipped == 2 and len(dataset) == 4
    reasons = " ".join(dataset.skipped.values())
    assert "short.mp4: too short: 5 frames, 9 needed" in reasons and "corrupt.mp4" in reasons
    assert video_paths(dataset) == ["box.mp4.gz", "good.mp4", "other.mov", "still.png"]


def test_item_shapes_ranges_and_images_as_clips(media_dir):
    dataset = make_dataset(media_dir)
    for i, entry in enumerate(dataset.entries):
        clip = dataset[i]
        frames = 1 if entry.info.is_image else 9
        assert clip.shape == (3, frames, *SIZE) and clip.dtype == torch.float32
        assert clip.min() >= -1 and clip.max() <= 1 and clip.std() > 0.05
    assert len(make_dataset(media_dir, images_as_clips=False)) == 3
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_still_images_with_simulated_motion(media_dir):
    dataset = make_dataset(media_dir, simulate_motion=True, hflip=False)
    still = next(i for i, e in enumerate(dataset.entries) if e.info.is_image)
    clip = dataset[still]
    assert clip.shape == (3, 9, *SIZE) and clip.min() >= -1 and clip.max() <= 1
    steps = (clip[:, 1:] - clip[:, :-1]).abs().mean(dim=(0, 2, 3))
    assert (steps > 0).all() and steps.max() < 0.3  # moving, smoothly


def test_determinism_with_seed_and_epoch(media_dir):
    a, b = make_dataset(media_dir, seed=3), make_dataset(media_dir, seed=3)
    for i in range(len(a)):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)
    first = a[1].clone()
    a.set_epoch(1)
    assert not torch.equal(a[1], first)
    assert not torch.equal(make_dataset(media_dir, seed=4)[1], first)


def test_gz_video_and_fps(media_dir):
    dataset = make_dataset(media_dir, fps=10)  # 9 frames at 10 fps need 0.9 s
    assert "box.mp4.gz" in video_paths(dataset)  # 12 frames at 12 fps: 1 s
    index = next(i for i, e in enumerate(dataset.entries) if e.path.name == "box.mp4.gz")
    assert dataset[index].shape == (3, 9, *SIZE)
    assert "other.mov" not in video_paths(dataset)  # 20 frames at 24 fps: 0.83 s
    assert any("other.mov: too short: 0.83 s, 0.90 s needed" in r for r in dataset.skipped.values())


def test_random_access_seeks_into_long_files():
    dataset = VideoClipDataset([sample_video_path("bikes")], num_frames=9, size=SIZE, temporal_factor=8, clips_per_file=2)
    clips = [dataset[i] for i in range(2)]
    assert all(c.shape == (3, 9, *SIZE) for c in clips) and not torch.equal(clips[0], clips[1])


def test_evaluation_clip_is_excluded(media_dir):
    dataset = make_dataset(media_dir)
    assert "carphone_pristine.mp4" not in video_paths(dataset)
    assert all("carphone_pristine" not in p.name for p in list_media_files(media_dir))
    assert "carphone_pristine.mp4" in [p.name for p in list_media_files(media_dir, exclude=[])]
    assert DataConfig(sources=["x"]).exclude == ["carphone_pristine*"]


def test_num_frames_must_match_the_temporal_factor(media_dir):
    with pytest.raises(InputError, match=r"num_frames=10 is not 1 \+ k \* 8"):
        VideoClipDataset(media_dir, num_frames=10, size=SIZE, temporal_factor=8)


def test_sources_as_list_file_and_missing_source(media_dir, tmp_path):
    listing = tmp_path / "clips.txt"
    listing.write_text(f"# training clips\n{media_dir / 'good.mp4'}\n{media_dir / 'nested'}\n")
    dataset = VideoClipDataset([listing], num_frames=9, size=SIZE, temporal_factor=8)
    assert video_paths(dataset) == ["good.mp4", "other.mov"]
    with pytest.raises(InputError, match="does not exist"):
        VideoClipDataset([tmp_path / "nowhere"], num_frames=9, size=SIZE)
    with pytest.raises(InputError, match=f"data source {tmp_path / 'gone.mp4'} does not exist"):  # it was skipped
        VideoClipDataset([media_dir / "good.mp4", tmp_path / "gone.mp4"], num_frames=9, size=SIZE)


def test_dataloader_with_two_workers_matches_single_process(media_dir):
    dataset = make_dataset(media_dir, images_as_clips=False)  # videos only: every clip has 9 frames
    single = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=collate_clips)
    batches = list(loader)
    assert len(batches) == len(dataset)
    for batch, clip in zip(batches, single):
        torch.testing.assert_close(batch[0], clip, rtol=0, atol=0)


def test_webdataset_shards_round_trip(media_dir, tmp_path):
    shards = write_shards(media_dir, tmp_path / "shards", samples_per_shard=3)
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar"]  # 6 files: carphone excluded
    assert not list((tmp_path / "shards").glob(".*"))
    assert expand_shards(str(tmp_path / "shards" / "shard-{000000..000001}.tar")) == shards
    dataset = WebDatasetClips(tmp_path / "shards", num_frames=9, size=SIZE, temporal_factor=8, images_as_clips=False)
    with pytest.warns(DataWarning, match="skipped 2 shard sample"):
        clips = list(dataset)
    assert len(clips) == 3 and all(c.shape == (3, 9, *SIZE) for c in clips)
    assert any("too short" in r for r in dataset.skipped.values())
    with pytest.warns(DataWarning):
        again = list(dataset)
    assert all(torch.equal(x, y) for x, y in zip(clips, again))


def test_webdataset_splits_across_workers_and_ranks(media_dir, tmp_path):
    write_shards([media_dir / "good.mp4", media_dir / "nested"], tmp_path / "one", samples_per_shard=10)
    dataset = WebDatasetClips(tmp_path / "one", num_frames=9, size=SIZE, temporal_factor=8)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=collate_clips)
    assert len(list(loader)) == 2  # one shard, two workers: each keeps every other sample
    halves = [list(WebDatasetClips(tmp_path / "one", num_frames=9, size=SIZE, temporal_factor=8, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(h) for h in halves] == [1, 1]


def test_procedural_dataset():
    dataset = ProceduralVideoDataset(num_samples=3, num_frames=9, size=(32, 40), seed=1)
    clip = dataset[0]
    assert clip.shape == (3, 9, 32, 40) and clip.min() >= -1 and clip.max() <= 1
    torch.testing.assert_close(clip, ProceduralVideoDataset(3, 9, (32, 40), seed=1)[0], rtol=0, atol=0)
    assert not torch.equal(clip, dataset[1])
    assert (clip[:, 1:] - clip[:, :-1]).abs().mean() > 0.001  # it moves


def test_build_dataset_from_the_one_data_config(media_dir, tmp_path):
    from onevae.errors import OneVAEError

    cfg = DataConfig(kind="procedural", num_frames=9, height=16, width=24, num_samples=4, batch_size=2)
    batch = next(iter(DataLoader(build_dataset(cfg, temporal_factor=8), batch_size=cfg.batch_size, collate_fn=collate_clips)))
    assert batch.shape == (2, 3, 9, 16, 24)
    files = DataConfig(sources=[str(media_dir)], num_frames=9, height=32, width=48, images_as_clips=False)
    with pytest.warns(DataWarning):
        assert isinstance(build_dataset(files, temporal_factor=8), VideoClipDataset)
    write_shards(media_dir / "good.mp4", tmp_path / "s")
    shards = DataConfig(kind="webdataset", sources=[str(tmp_path / "s")], num_frames=9, height=32, width=48)
    assert isinstance(build_dataset(shards, temporal_factor=8), WebDatasetClips)
    with pytest.raises(OneVAEError, match="frames"):
        DataConfig.from_dict({"sources": ["x"], "frames": 3})
    with pytest.raises(OneVAEError, match="kind"):
        DataConfig.from_dict({"sources": ["x"], "kind": "s3"})
    with pytest.raises(InputError, match="needs at least one entry in sources"):
        build_dataset(DataConfig(kind="files"), temporal_factor=8)
    with pytest.raises(InputError, match="different shapes"):
        collate_clips([torch.zeros(3, 1, 4, 4), torch.zeros(3, 9, 4, 4)])
