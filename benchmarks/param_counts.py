"""Parameter counts of every registered codec's presets next to the official numbers.

    .venv/bin/python benchmarks/param_counts.py [--preset paper]

Official numbers: LDMIC from the paper's Table 2 (encoder / decoder side); the others as
measured from the official model classes in their training configuration
(../shared/reference/architectures.md §2.8, §3.7, §4.10, §5.2; ELIC from CompressAI).
"""

from __future__ import annotations

import argparse

from mvarchive.codecs import create_codec, list_codecs

OFFICIAL_TOTAL = {
    "ldmic": 20_309_219,
    "ldmic-fast": 20_309_219,
    "ecsic": 25_742_502,
    "bisic": 78_210_787,
    "bisic-fast": 85_895_075,
    "camsic": 84_190_627,
    "single-view-mlicpp": 83_501_408,
    "single-view-elic2022-chandelier": 33_790_000,
}
OFFICIAL_SIDES = {"ldmic": (11.24e6, 15.24e6), "ldmic-fast": (11.24e6, 15.24e6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    print("| codec | preset | total | official total | deviation | encoder / decoder side | official sides |")
    print("|---|---|---|---|---|---|---|")
    for spec in list_codecs():
        if args.preset not in spec.presets:
            continue
        counts = create_codec(spec.name, args.preset).parameter_counts()
        total = counts["total"]
        official = OFFICIAL_TOTAL.get(spec.name)
        deviation = f"{100 * (total / official - 1):+.2f} %" if official else "-"
        sides = (f"{counts['encoder'] / 1e6:.2f} M / {counts['decoder'] / 1e6:.2f} M"
                 if "encoder" in counts else "-")
        off_sides = OFFICIAL_SIDES.get(spec.name)
        off_text = f"{off_sides[0] / 1e6:.2f} M / {off_sides[1] / 1e6:.2f} M" if off_sides else "-"
        print(f"| {spec.name} | {args.preset} | {total:,} | {f'{official:,}' if official else '-'} | "
              f"{deviation} | {sides} | {off_text} |", flush=True)


if __name__ == "__main__":
    main()
