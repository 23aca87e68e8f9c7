"""What verification adds to a decode, per megapixel (a benchmark, not a test).

    .venv/bin/python benchmarks/verify_cost.py [--sizes 256x320 512x512 832x1024] [--preset paper]

For one stereo group per size: the codec's decode time (``decompress``) and the time to check
the result against the stored fingerprints (uint8 conversion, SHA-256 of pixels and symbols,
64x64 tile means: :mod:`mvarchive.integrity`), both per megapixel of decoded views, and their
ratio. Encoding pays the same fingerprint cost once. Untrained weights (timing only).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mvarchive.codecs import load_codec
from mvarchive.integrity import Fingerprint, check_group
from mvarchive.metrics import to_uint8


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["256x320", "512x512", "832x1024"])
    parser.add_argument("--codec", default="ldmic-fast")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    codec = load_codec(name=args.codec, preset=args.preset)
    print(f"{args.codec} ({args.preset}), 2 views, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print("| size | MP (2 views) | decode s/MP | verify s/MP | verify / decode |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
        compressed = codec.compress(x)
        expected = Fingerprint.of(to_uint8(compressed.x_hat), compressed.latents)
        decoded = codec.decompress(compressed.data)
        decode_s = best_of(args.repeat, lambda: codec.decompress(compressed.data))

        def verify() -> None:
            check = check_group("g", ("left", "right"), expected, to_uint8(decoded.x_hat), decoded.latents)
            assert check.status.value == "ok", check.describe()

        verify_s = best_of(args.repeat * 3, verify)
        mp = 2 * h * w / 1e6
        print(f"| {size} | {mp:.2f} | {decode_s / mp:.3f} | {verify_s / mp:.4f} | {verify_s / decode_s:.2%} |")


if __name__ == "__main__":
    main()
