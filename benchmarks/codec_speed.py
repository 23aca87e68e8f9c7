"""Encode/decode time per codec against its FLOP bound (a benchmark, not a test).

    .venv/bin/python benchmarks/codec_speed.py [--sizes 832x1024] [--preset paper] [--views 2]
        [--threads 2] [--codecs ldmic-fast ...]

Times real entropy coding (``compress`` -> bytes -> ``decompress``) of one group of K views
with untrained weights (speed does not depend on training; sizes in bytes do, so they are
not reported). ``encode s`` includes the synthesis that produces the encoder-side
reconstruction (the archive's pixel digest needs it); ``enc -synth s`` is
``compress(x, reconstruct=False)``, which is what the papers time.

The FLOP bound: every multiply-accumulate that runs in ``compress`` and in ``decompress``
(convolutions, transposed convolutions, linear layers, attention matmuls: torch's
``FlopCounterMode``, MAC = FLOP / 2), counted at a quarter of the area and scaled by 4
(everything in these codecs is per latent position; counting at full size doubles the run),
divided by this machine's convolution throughput measured in the same run (a 5x5 and a 3x3
convolution at 192 channels, channels_last, the benchmark's thread count; the faster one).
``× bound`` is measured time / bound time: 1 would be every MAC at peak convolution speed.
Each row also gives the ratio to the single-view baseline measured in the same run, and
the paper's reported figure where one exists.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

BASELINE = "single-view-mbt2018-mean"
# What the papers report (different hardware: compare ratios, not seconds).
PAPER = {
    "ldmic": "enc 9.44 / dec 47.87 s (832x1024, 1 core 6230R)",
    "ldmic-fast": "enc 2.37 / dec 11.48 s (832x1024, 1 core 6230R)",
    "bisic": "enc+dec 167.25 s (InStereo2K, 8370C)",
    "bisic-fast": "enc+dec 22.82 s (InStereo2K, 8370C)",
    "ecsic": "enc ~15-17 ms (RTX 3090)",
    "camsic": "figure only (V100)",
    "vemic": "not reported",
}


def conv_throughput(threads: int, repeat: int = 3) -> dict[str, float]:
    """GMAC/s of 192-channel 5x5 and 3x3 convolutions (channels_last, batch 2, 104x128)."""
    import torch
    import torch.nn.functional as F

    out = {}
    x = torch.rand(2, 192, 104, 128).contiguous(memory_format=torch.channels_last)
    for k in (5, 3):
        w = torch.rand(192, 192, k, k).contiguous(memory_format=torch.channels_last)
        macs = 2 * 192 * 192 * k * k * 104 * 128
        with torch.no_grad():
            F.conv2d(x, w, padding=k // 2)
            best = min(_timed(lambda: F.conv2d(x, w, padding=k // 2)) for _ in range(repeat))
        out[f"{k}x{k}"] = macs / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_macs(codec, x) -> tuple[float, float]:
    """(encode MACs, decode MACs) that run in compress (with reconstruction) and decompress."""
    from torch.utils.flop_counter import FlopCounterMode

    grads = [(p, p.requires_grad) for p in codec.parameters()]
    for p, _ in grads:  # the counter's module tracker trips over parameters that need grad
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            data = codec.compress(x).data
        encode = counter.get_total_flops() / 2
        with FlopCounterMode(display=False) as counter:
            codec.decompress(data)
        return encode, counter.get_total_flops() / 2
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)


def time_codec(name: str, preset: str, views: int, height: int, width: int, repeat: int, device: str,
               full_warmup: bool = False, count: bool = True) -> dict[str, float]:
    import torch

    from mvarchive.codecs import load_codec

    codec = load_codec(name=name, preset=preset).to(device)
    x = torch.rand(views, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    # warm-up (allocator, kernel selection); the first codec of the process also pays one-time
    # library start-up, so the baseline, measured first, is warmed up at full size
    warm = x if full_warmup else x[:, :, :64, :64]
    codec.decompress(codec.compress(warm).data)
    encode, encode_only, decode = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        encoded = codec.compress(x)
        encode.append(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            bare = codec.compress(x, reconstruct=False)
        except TypeError:  # before compress() took reconstruct
            bare = None
        encode_only.append(time.perf_counter() - start)
        if bare is not None and bare.data != encoded.data:
            raise RuntimeError(f"{name}: compress(reconstruct=False) wrote other bytes")
        start = time.perf_counter()
        decoded = codec.decompress(encoded.data)
        decode.append(time.perf_counter() - start)
        if not torch.equal(decoded.x_hat, encoded.x_hat):
            raise RuntimeError(f"{name}: decoded reconstruction differs from the encoder's")
    row = {"encode": min(encode), "encode_only": min(encode_only) if bare is not None else float("nan"),
           "decode": min(decode), "bytes": len(encoded.data)}
    if count:
        row["encode_macs"], row["decode_macs"] = (
            4 * v for v in count_macs(codec, x[:, :, : height // 2, : width // 2].contiguous())
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["832x1024"], help="HxW sizes")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as the issue's targets)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--codecs", nargs="+", default=None, help="codecs to time (default: all)")
    parser.add_argument("--no-bound", action="store_true", help="skip counting MACs (faster)")
    args = parser.parse_args()

    import torch

    from mvarchive.codecs import list_codecs

    torch.set_num_threads(args.threads)
    names = args.codecs or [s.name for s in list_codecs()]
    cuda = args.device.startswith("cuda")
    device_name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    throughput = conv_throughput(args.threads)
    peak = max(throughput.values())
    print(f"# codec speed: preset {args.preset}, {args.views} views, device {args.device} ({device_name}, "
          f"{os.cpu_count()} cores), torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}")
    print("# conv throughput (192 ch, channels_last): "
          + ", ".join(f"{k} {v:.1f} GMAC/s" for k, v in throughput.items()) + f"; bound uses {peak:.1f}")
    print()
    print("| codec | size | encode s | enc -synth s | decode s | enc GMAC | dec GMAC | enc × bound | dec × bound "
          "| enc × base | dec × base | paper |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        height, width = (int(v) for v in size.split("x"))
        order = [BASELINE] + [n for n in names if n != BASELINE]  # baseline first: ratios as we go
        base = None
        for name in order:
            row = time_codec(name, args.preset, args.views, height, width, args.repeat, args.device,
                             full_warmup=name == BASELINE, count=not args.no_bound)
            base = base or row
            if args.no_bound:
                macs, bound = "- | -", "- | -"
            else:
                enc_bound = row["encode_macs"] / (peak * 1e9)
                dec_bound = row["decode_macs"] / (peak * 1e9)
                macs = f"{row['encode_macs'] / 1e9:.0f} | {row['decode_macs'] / 1e9:.0f}"
                bound = f"{row['encode'] / enc_bound:.2f} | {row['decode'] / dec_bound:.2f}"
            print(f"| {name} | {size} | {row['encode']:.2f} | {row['encode_only']:.2f} | {row['decode']:.2f} | "
                  f"{macs} | {bound} | {row['encode'] / base['encode']:.2f} | {row['decode'] / base['decode']:.2f} | "
                  f"{PAPER.get(name, '-')} |", flush=True)
    print("\nload average at the end: " + " ".join(f"{value:.2f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main()
