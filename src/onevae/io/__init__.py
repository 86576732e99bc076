"""Video input/output: probing, streaming decode, size fitting, atomic writing (H.264, lossless FFV1, images and
frame sequences), sample clips."""

from .fit import Geometry, fit_size, resize_video
from .image_writer import ImageWriter, StaleFramesWarning, write_image
from .outputs import SampleAspectWarning
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
from .writer import OutputSizeWarning, VideoWriter, open_writer, side_by_side, write_video

__all__ = [
    "EVALUATION_CLIP",
    "IMAGE_EXTENSIONS",
    "SAMPLE_CLIPS",
    "VIDEO_EXTENSIONS",
    "Geometry",
    "ImageWriter",
    "OutputSizeWarning",
    "SampleAspectWarning",
    "StaleFramesWarning",
    "VideoInfo",
    "VideoDisplayWarning",
    "VideoReadWarning",
    "VideoWriter",
    "fit_size",
    "frames_to_tensor",
    "iter_video_frames",
    "iter_video_windows",
    "open_writer",
    "probe_video",
    "read_video",
    "resize_video",
    "sample_data_dir",
    "sample_video_path",
    "side_by_side",
    "tensor_to_frames",
    "write_image",
    "write_video",
]
