"""Video input/output: probing, streaming decode, size fitting, atomic H.264 writing, sample clips."""

from .fit import Geometry, fit_size, resize_video
from .samples import EVALUATION_CLIP, SAMPLE_CLIPS, sample_data_dir, sample_video_path
from .video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoDisplayWarning,
    VideoInfo,
    VideoReadWarning,
    frames_to_tensor,
    iter_video_frames,
    iter_video_windows,
    probe_video,
    read_video,
    tensor_to_frames,
)
from .writer import OutputSizeWarning, VideoWriter, side_by_side, write_video

__all__ = [
    "EVALUATION_CLIP",
    "IMAGE_EXTENSIONS",
    "SAMPLE_CLIPS",
    "VIDEO_EXTENSIONS",
    "Geometry",
    "OutputSizeWarning",
    "VideoInfo",
    "VideoDisplayWarning",
    "VideoReadWarning",
    "VideoWriter",
    "fit_size",
    "frames_to_tensor",
    "iter_video_frames",
    "iter_video_windows",
    "probe_video",
    "read_video",
    "resize_video",
    "sample_data_dir",
    "sample_video_path",
    "side_by_side",
    "tensor_to_frames",
    "write_video",
]
