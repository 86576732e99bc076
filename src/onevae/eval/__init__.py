"""Evaluation: reconstruction metrics and codebook statistics."""

from .metrics import PSNR_CAP, clip_metrics, codebook_usage, psnr_per_frame, seam_figure, ssim_per_frame

__all__ = ["PSNR_CAP", "clip_metrics", "codebook_usage", "psnr_per_frame", "seam_figure", "ssim_per_frame"]
