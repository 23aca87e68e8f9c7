"""Encode/decode time per codec and image size (a benchmark, not a test).

    .venv/bin/python benchmarks/codec_speed.py [--sizes 512x512 832x1024] [--preset paper] [--views 2]

Times real entropy coding (``compress`` -> bytes -> ``decompress``) of one group of K views
with untrained weights (speed does not depend on training; sizes in bytes do, so they are
not reported). Each row also gives the ratio to the single-view baseline measured in the
same run, and the paper's reported figure where one exists.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mvarchive.codecs import list_codecs, load_codec

BASELINE = "single-view-mbt2018-mean"
# What the papers report (different hardware: compare ratios, not seconds).
PAPER = {
    "ldmic": "832x1024: enc 9.44 s / dec 47.87 s (1 core Xeon 6230R, Table 2)",
    "ldmic-fast": "832x1024: enc 2.37 s / dec 11.48 s (1 core Xeon 6230R, Table 2)",
    "bisic": "InStereo2K: enc+dec 167.25 s (Xeon 8370C, Table 2)",
    "bisic-fast": "InStereo2K: enc+dec 22.82 s (Xeon 8370C, Table 2)",
    "ecsic": "enc ~15-17 ms incl. loading (RTX 3090, §4.4)",
    "camsic": "only a figure (V100, Fig. 6)",
    "vemic": "not reported",
}


def time_codec(name: str, preset: str, views: int, height: int, width: int, repeat: int, device: str,
               full_warmup: bool = False) -> tuple[float, float, int]:
    codec = load_codec(name=name, preset=preset).to(device)
    x = torch.rand(views, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    # warm-up (allocator, kernel selection); the first codec of the process also pays one-time
    # library start-up, so the baseline, measured first, is warmed up at full size
    warm = x if full_warmup else x[:, :, :64, :64]
    codec.decompress(codec.compress(warm).data)
    encode, decode = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        encoded = codec.compress(x)
        encode.append(time.perf_counter() - start)
        start = time.perf_counter()
        decoded = codec.decompress(encoded.data)
        decode.append(time.perf_counter() - start)
        if not torch.equal(decoded.x_hat, encoded.x_hat):
            raise RuntimeError(f"{name}: decoded reconstruction differs from the encoder's")
    return min(encode), min(decode), len(encoded.data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["512x512", "832x1024"], help="HxW sizes")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--codecs", nargs="+", default=[s.name for s in list_codecs()])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"# codec speed: preset {args.preset}, {args.views} views, device {args.device} ({device_name}), "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("| codec | size | encode s | decode s | encode × baseline | decode × baseline | paper |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        height, width = (int(v) for v in size.split("x"))
        names = [BASELINE] + [n for n in args.codecs if n != BASELINE]  # baseline first: ratios as we go
        base = None
        for name in names:
            enc, dec, _ = time_codec(name, args.preset, args.views, height, width, args.repeat, args.device,
                                     full_warmup=name == BASELINE)
            base = base or (enc, dec)
            print(f"| {name} | {size} | {enc:.2f} | {dec:.2f} | {enc / base[0]:.2f} | {dec / base[1]:.2f} | "
                  f"{PAPER.get(name, '-')} |", flush=True)


if __name__ == "__main__":
    main()
