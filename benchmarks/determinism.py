"""Determinism study: does decoding reproduce the encoder's symbols and pixels on "another CPU"?

    .venv/bin/python benchmarks/determinism.py [--quick] [--work DIR] [--codecs NAME ...]

"Another CPU" is simulated on this machine by running the decoder in a fresh subprocess
(so environment variables act before torch is imported) under each configuration of

* torch threads: 1 or 2;
* CPU kernels: the default (oneDNN picks the best ISA), oneDNN capped at AVX2
  (``ONEDNN_MAX_CPU_ISA=AVX2``), oneDNN disabled (``torch.backends.mkldnn.enabled=False``:
  convolutions take ATen's im2col + MKL path), and "all-AVX2": oneDNN,
  MKL (``MKL_ENABLE_INSTRUCTIONS=AVX2``) and ATen's own kernels (``ATEN_CPU_CAPABILITY=avx2``)
  all capped at AVX2, the closest this machine gets to an AVX2-only CPU.

The reference is encoded in a subprocess with 1 thread and default kernels; each
configuration then (a) encodes the same views again and compares the bytes of the streams,
(b) decodes the reference streams and compares the decoded integer symbols with the encoder's
and the 8-bit pixels with the encoder's reconstruction (``mvarchive.metrics.to_uint8``).

Content: stereo pairs cut from ``skimage.data`` photographs at odd sizes; every registered
codec at its ``tiny`` preset (untrained, seed 0), a ``tiny`` ldmic-fast trained for 150
steps on the sample dataset (untrained latents can be mostly zero, which would make the
study trivially pass) at three sizes (one with three views), and ldmic-fast ``paper`` at 256x320.
The "nonzero y" column shows how much of each latent is nonzero. Columns: CDF tables (built
at load) identical to the reference process's; streams of a re-encode identical; scales (the
float32 inputs of every ``build_indexes``) bit-identical while decoding; decoded symbols equal;
pixels. Decode times are wall-clock on a shared machine: compare within a run only.

Writes the table to ``benchmarks/results/determinism.md`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}
ALL_AVX2 = {**AVX2, "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
KERNELS = {  # name -> (extra environment, oneDNN enabled)
    "default": ({}, True),
    "onednn-avx2": (AVX2, True),
    "no-onednn": ({}, False),
    "all-avx2": (ALL_AVX2, True),
}
CONTROLLED = sorted({k for env, _ in KERNELS.values() for k in env} | {"OMP_NUM_THREADS", "MKL_NUM_THREADS"})


def configurations(quick: bool) -> list[tuple[str, int]]:
    runs = [(kernel, threads) for kernel in ("default", "onednn-avx2", "no-onednn", "all-avx2") for threads in (1, 2)]
    return [run for run in runs if not quick or run != ("all-avx2", 2)]


# --- content --------------------------------------------------------------------------------
def stereo_pair(photo: str, height: int, width: int, top: int = 0, left: int = 0, views: int = 2):
    """(K, 3, H, W) in [0, 1]: overlapping crops of one photograph, shifted horizontally."""
    import numpy as np
    import skimage.data

    from mvarchive.metrics import to_tensor

    image = getattr(skimage.data, photo)()
    shift = max(4, width // 16)
    if image.shape[1] < left + width + shift * (views - 1) or image.shape[0] < top + height:
        raise ValueError(f"{photo} {image.shape} is too small for {views} views of {height}x{width}")
    crops = [image[top : top + height, left + v * shift : left + v * shift + width] for v in range(views)]
    return to_tensor(np.stack(crops))


def train_tiny(work: Path) -> str:
    """A briefly trained ldmic-fast tiny checkpoint (cached in ``work``)."""
    from mvarchive.datasets import build_sample_datasets
    from mvarchive.training import TrainConfig, train_codec_loop

    out = work / "train-ldmic-fast-tiny"
    marker = out / "checkpoint.txt"
    if marker.is_file() and Path(marker.read_text().strip()).is_file():
        return marker.read_text().strip()
    data = build_sample_datasets(work / "sample-data")
    started = time.perf_counter()
    result = train_codec_loop(TrainConfig(
        dataset=str(data.stereo), codec="ldmic-fast", preset="tiny", steps=150, batch_size=4, crop=128,
        lmbda=1024, learning_rate=5e-4, checkpoint_every=1000, output_dir=str(out),
    ))
    print(f"trained ldmic-fast tiny for 150 steps in {time.perf_counter() - started:.0f} s: {result.final}",
          flush=True)
    marker.write_text(result.checkpoint)
    return result.checkpoint


def plan_cases(args, checkpoint: str | None) -> list[dict]:
    from mvarchive.codecs import list_codecs

    cases = []
    names = args.codecs or [spec.name for spec in list_codecs()]
    if args.quick:
        names = [n for n in names if n in ("ldmic-fast", "bisic-fast", "single-view-mbt2018-mean", "ecsic")]
    for name in names:
        cases.append(dict(label=f"{name} tiny", codec=name, preset="tiny", checkpoint=None,
                          photo="astronaut", size=[200, 264], views=2))
    if checkpoint:
        cases.append(dict(label="ldmic-fast tiny trained", codec="ldmic-fast", preset="tiny", checkpoint=checkpoint,
                          photo="astronaut", size=[200, 264], views=2))
        if not args.quick:
            cases.append(dict(label="ldmic-fast tiny trained", codec="ldmic-fast", preset="tiny",
                              checkpoint=checkpoint, photo="coffee", size=[136, 200], top=100, left=150, views=2))
            cases.append(dict(label="ldmic-fast tiny trained", codec="ldmic-fast", preset="tiny",
                              checkpoint=checkpoint, photo="chelsea", size=[120, 184], top=40, left=60, views=3))
    if not args.quick and (not args.codecs or "ldmic-fast" in args.codecs):
        cases.append(dict(label="ldmic-fast paper", codec="ldmic-fast", preset="paper", checkpoint=None,
                          photo="rocket", size=[256, 320], top=60, left=100, views=2))
    for i, case in enumerate(cases):
        h, w = case["size"]
        case["id"] = f"{i:02d}"
        case["label"] += f" {case['views']}x{h}x{w}"
    return cases


def _load(case: dict):
    from mvarchive.codecs import load_codec

    return load_codec(case["checkpoint"], name=case["codec"], preset=case["preset"], seed=0)


def _views(case: dict):
    return stereo_pair(case["photo"], *case["size"], top=case.get("top", 0), left=case.get("left", 0),
                       views=case["views"])


# --- subprocess side ------------------------------------------------------------------------
class ScaleDigest:
    """Hashes every tensor of scales that selects CDF tables (``build_indexes``' input): equal
    digests mean the entropy-parameter path produced bit-identical floats, a far more
    sensitive check than equal symbols."""

    def __init__(self) -> None:
        import hashlib

        from compressai.entropy_models import GaussianConditional

        self.hash = hashlib.sha256()
        original = GaussianConditional.build_indexes
        digest = self

        def build_indexes(module, scales):
            digest.hash.update(scales.detach().float().contiguous().cpu().numpy().tobytes())
            return original(module, scales)

        GaussianConditional.build_indexes = build_indexes

    def take(self) -> str:
        import hashlib

        value, self.hash = self.hash.hexdigest(), hashlib.sha256()
        return value


def table_digest(codec) -> str:
    """Digest of every CDF table the codec built in this process (``update()`` at load)."""
    import hashlib

    from compressai.entropy_models import EntropyModel

    digest = hashlib.sha256()
    for name, module in sorted(codec.named_modules(), key=lambda item: item[0]):
        if isinstance(module, EntropyModel):
            for tensor in (module._quantized_cdf, module._offset, module._cdf_length,
                           getattr(module, "scale_table", torch_empty())):
                digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def torch_empty():
    import torch

    return torch.empty(0)


def worker(work: Path, kernel: str, threads: int, role: str) -> None:
    """Runs in a fresh process; the environment was set by the parent."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = KERNELS[kernel][1]
    from mvarchive.codecs.determinism import decode_policy
    from mvarchive.metrics import to_uint8

    digest = ScaleDigest()
    cases = json.loads((work / "cases.json").read_text())
    results = {"policy": decode_policy(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cases": {}}
    for case in cases:
        codec = _load(case)
        views = _views(case)
        ref_dir = work / "reference" / case["id"]
        row: dict = {"tables": table_digest(codec)}
        digest.take()
        started = time.perf_counter()
        encoded = codec.compress(views)
        row["encode_s"] = time.perf_counter() - started
        row["encode_scales"] = digest.take()
        if role == "reference":
            ref_dir.mkdir(parents=True, exist_ok=True)
            (ref_dir / "stream.bin").write_bytes(encoded.data)
            np.savez(ref_dir / "latents.npz", **encoded.latents)
            np.save(ref_dir / "x_hat.npy", to_uint8(encoded.x_hat))
            row["nonzero_y"] = float(np.mean(encoded.latents["y"] != 0))
            row["bytes"] = len(encoded.data)
            codec.decompress(encoded.data)
            digest.take()
            codec.decompress(encoded.data)
            row["decode_scales"] = digest.take()
            results["cases"][case["id"]] = row
            print(f"  reference {case['label']}: {len(encoded.data)} bytes, {row['encode_s']:.1f} s", flush=True)
            continue
        data = (ref_dir / "stream.bin").read_bytes()
        ref_latents = dict(np.load(ref_dir / "latents.npz"))
        ref_pixels = np.load(ref_dir / "x_hat.npy").astype(np.int16)
        row["streams_identical"] = encoded.data == data
        row["encode_pixels_maxdiff"] = int(np.abs(to_uint8(encoded.x_hat).astype(np.int16) - ref_pixels).max())
        try:
            codec.decompress(data)  # warm-up (oneDNN kernel creation), not timed
        except Exception:  # noqa: BLE001 - the timed call reports it
            pass
        digest.take()
        started = time.perf_counter()
        try:
            decoded = codec.decompress(data)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            row.update(decoded=False, error=f"{type(exc).__name__}: {exc}"[:200])
        else:
            row["decode_s"] = time.perf_counter() - started
            row["decode_scales"] = digest.take()
            row["decoded"] = True
            row["symbols_exact"] = set(decoded.latents) == set(ref_latents) and all(
                np.array_equal(decoded.latents[k], ref_latents[k]) for k in ref_latents
            )
            diff = np.abs(to_uint8(decoded.x_hat).astype(np.int16) - ref_pixels)
            row["max_lsb"] = int(diff.max())
            row["pixels_differing"] = int((diff != 0).sum())
            row["pixels"] = int(diff.size)
        results["cases"][case["id"]] = row
    out = work / "runs" / f"{role}-{kernel}-t{threads}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


def spawn(work: Path, kernel: str, threads: int, role: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(KERNELS[kernel][0])
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", role, "--work", str(work),
               "--kernel", kernel, "--threads", str(threads)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=ROOT)
    print(f"{role} {kernel} threads={threads}: {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads((work / "runs" / f"{role}-{kernel}-t{threads}.json").read_text())


# --- report ---------------------------------------------------------------------------------
def _yes(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "**NO**")


def render(cases: list[dict], reference: dict, runs: dict[tuple[str, int], dict], quick: bool) -> str:
    import torch

    lines = [
        "# Determinism study",
        "",
        f"Generated by `benchmarks/determinism.py{' --quick' if quick else ''}` on "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, ATen CPU capability "
        f"{reference['cpu_capability']}. Reference: encoded with 1 thread, default kernels.",
        "Pixels compare the decoded 8-bit views with the encoder's 8-bit reconstruction; "
        "'encode' columns compare a re-encode under the configuration with the reference.",
        "",
        "Decoding policy of the reference: `" + json.dumps(reference["policy"]) + "`",
        "",
    ]
    # overview: one row per case, one column per configuration
    lines += [
        "## Overview",
        "",
        "Each cell: `ok` when the CDF tables, re-encoded streams, decoding scales and decoded symbols",
        "all equal the reference's (else what differs), then the largest pixel difference in LSB and",
        "the number of differing pixels.",
        "",
        "| case | nonzero y | " + " | ".join(f"{k} t{t}" for k, t in runs) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for case in cases:
        ref = reference["cases"][case["id"]]
        cells = []
        for run in runs.values():
            row = run["cases"][case["id"]]
            if not row.get("decoded"):
                cells.append("**decode failed**")
                continue
            bad = [name for name, good in (
                ("tables", row["tables"] == ref["tables"]), ("streams", row["streams_identical"]),
                ("scales", row["decode_scales"] == ref["decode_scales"]), ("symbols", row["symbols_exact"]),
            ) if not good]
            head = "ok" if not bad else "**" + ",".join(bad) + " differ**"
            cells.append(f"{head}, {row['max_lsb']} ({row['pixels_differing']})")
        lines.append(f"| {case['label']} | {100 * ref['nonzero_y']:.0f} % | " + " | ".join(cells) + " |")
    lines.append("")
    for case in cases:
        ref = reference["cases"][case["id"]]
        lines += [
            f"## {case['label']}",
            "",
            f"{ref['bytes']} bytes, nonzero y {100 * ref['nonzero_y']:.1f} %, "
            f"reference encode {ref['encode_s']:.2f} s",
            "",
            "| kernels | threads | CDF tables identical | streams identical | encoder pixels max LSB | decoded | "
            "scales bit-identical | "
            "symbols exact | pixels exact | max LSB | differing pixels | decode s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for (kernel, threads), run in runs.items():
            row = run["cases"][case["id"]]
            if not row.get("decoded"):
                lines.append(f"| {kernel} | {threads} | {_yes(row['tables'] == ref['tables'])} | "
                             f"{_yes(row['streams_identical'])} | "
                             f"{row['encode_pixels_maxdiff']} | **NO** ({row.get('error', '')}) | "
                             "— | — | — | — | — | — |")
                continue
            lines.append(
                f"| {kernel} | {threads} | {_yes(row['tables'] == ref['tables'])} | {_yes(row['streams_identical'])} | "
                f"{row['encode_pixels_maxdiff']} | yes | "
                f"{_yes(row['symbols_exact'])} | {_yes(row['max_lsb'] == 0)} | {row['max_lsb']} | "
                f"{row['pixels_differing']} / {row['pixels']} | {row['decode_s']:.2f} |"
            )
        lines.append("")
    # summary
    all_rows = [(k, t, run["cases"][c["id"]]) for (k, t), run in runs.items() for c in cases]
    streams = all(r.get("streams_identical") for _, _, r in all_rows)
    tables = all(r["tables"] == reference["cases"][c["id"]]["tables"]
                 for run in runs.values() for c in cases for r in [run["cases"][c["id"]]])
    refs = {c["id"]: reference["cases"][c["id"]] for c in cases}
    scales = all(run["cases"][c["id"]].get("decode_scales") == refs[c["id"]]["decode_scales"]
                 and run["cases"][c["id"]].get("encode_scales") == refs[c["id"]]["encode_scales"]
                 for run in runs.values() for c in cases)
    symbols = all(r.get("decoded") and r.get("symbols_exact") for _, _, r in all_rows)
    worst = max((r.get("max_lsb", 0) for _, _, r in all_rows), default=0)
    same = [r for k, t, r in all_rows if k == "default" and t == 1]
    lines += [
        "## Summary",
        "",
        f"- CDF tables (built at load) identical under every configuration: {_yes(tables)}",
        f"- streams identical under every configuration: {_yes(streams)}",
        f"- scales (CDF-table selectors) bit-identical to the reference's, encode and decode, "
        f"under every configuration: {_yes(scales)}",
        f"- symbols exact under every configuration: {_yes(symbols)}",
        f"- pixels exact at the reference configuration (default kernels, 1 thread): "
        f"{_yes(all(r.get('max_lsb') == 0 for r in same))}",
        f"- worst pixel difference over all configurations: {worst} LSB",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="four codecs, one size, all-AVX2 with 1 thread only")
    parser.add_argument("--work", type=Path, default=RESULTS / "determinism-work")
    parser.add_argument("--codecs", nargs="+", help="restrict to these codecs")
    parser.add_argument("--no-train", action="store_true", help="skip the briefly trained ldmic-fast")
    parser.add_argument("--output", type=Path, default=RESULTS / "determinism.md")
    parser.add_argument("--render-only", action="store_true", help="re-render the table from an earlier run's --work")
    parser.add_argument("--worker", choices=["reference", "check"], help=argparse.SUPPRESS)
    parser.add_argument("--kernel", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.work, args.kernel, args.threads, args.worker)
        return
    if args.render_only:
        cases = json.loads((args.work / "cases.json").read_text())
        runs_dir = args.work / "runs"
        reference = json.loads((runs_dir / "reference-default-t1.json").read_text())
        runs = {(k, t): json.loads((runs_dir / f"check-{k}-t{t}.json").read_text())
                for k, t in configurations(args.quick) if (runs_dir / f"check-{k}-t{t}.json").is_file()}
        table = render(cases, reference, runs, args.quick)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table)
        print(table)
        return
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if not args.no_train and (not args.codecs or "ldmic-fast" in args.codecs):
        checkpoint = train_tiny(args.work)
    cases = plan_cases(args, checkpoint)
    (args.work / "cases.json").write_text(json.dumps(cases, indent=1))
    reference = spawn(args.work, "default", 1, "reference")
    runs = {(k, t): spawn(args.work, k, t, "check") for k, t in configurations(args.quick)}
    table = render(cases, reference, runs, args.quick)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    print(f"total {time.perf_counter() - started:.0f} s; written to {args.output}")


if __name__ == "__main__":
    main()
