"""The bad-input matrix, as a user meets it: the installed ``mvarchive`` script, run from a
working directory of its own (``work/``) with relative paths (``../data/<case>``). The quick
refusals (and restore's) run the script's entry point in children forked from one warmed
interpreter (``tests/warm_cli.py``, start-up paid once); every other command runs the script itself.

Every refused case must end with exit code 2 (1 for ``verify`` finding damaged groups), one
``error:`` line on stderr naming the file or group, no traceback, no new file in the
destination, and a source (data and checkpoints) that is byte-identical afterwards.

  case                                   expected
  camera missing from one group          refused at discovery, group named
  zero-byte file                         refused at discovery, file named
  two images with one stem (left.png/.jpg)  refused at discovery, both files named
  manifest: group listed twice           refused, group named
  manifest: two groups -> one file       refused, both groups and the file named
  manifest: names differing only in case refused (one file on case-insensitive disks)
  manifest: missing file / not an image / invalid JSON   refused, file named
  source missing, one camera, images at the root          refused, folder named
  unknown codec                          refused, codec named
  checkpoint of another codec            refused, checkpoint and codecs named
  checkpoint: random bytes / PNG renamed .pt / empty / truncated / missing   refused, file named
  destination holds other files          refused, destination named, untouched
  train / info / restore on bad input    refused before any service starts
  truncated, corrupt, non-image, 16-bit, mismatched sizes   refused by the preflight, each named (slow)
  10000x10000 image                      refused by --max-pixels, never killed (slow)
  grayscale, palette, RGBA, 32x32, unicode + space names    archived, restored as RGB under the
                                         original names, conversion notice names the file (slow)
  manifest views at ../x.png and /abs    stored under <group>/<camera>.png, never restored outside OUT
  bit-flipped, truncated, foreign stream verify exits 1 and restore refuses, each group named,
                                         nothing written for it (slow)
  restore over existing files / into the source / with another codec's checkpoint   refused

The observed messages are written to benchmarks/results/bad_input_matrix.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.bad_inputs import (
    Matrix,
    Run,
    cli_env,
    copy_tree,
    corrupt_pixels,
    get_stream,
    group_names,
    huge_black_png,
    make_group,
    png_bytes,
    rgb,
    run_cli,
    set_stream,
    sixteen_bit,
    snapshot,
    truncated,
)
from tests.warm_cli import WarmCli

REPO = Path(__file__).resolve().parents[2]
MATRIX_FILE = REPO / "benchmarks" / "results" / "bad_input_matrix.md"
H, W = 96, 128  # every base view; small enough for a fast tiny codec, >= 64 for training crops


# ---------------------------------------------------------------- fixtures


@dataclass
class Ctx:
    root: Path
    data: Path
    work: Path
    home: Path
    out: Path
    ckpt_dir: Path
    base: Path
    checkpoint: str  # relative to work/
    other_checkpoint: str  # relative to work/ (single-view-mbt2018-mean, tiny)

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.work)

    def cli(self, args: list[str], timeout: float = 600, services: dict[str, str] | None = None) -> Run:
        """Run the script; with ``services`` (the fixture) it reaches the session's running
        services (as a user with `PREFECT_API_URL` / `MVARCHIVE_DASK_ADDRESS` set), else the
        command starts its own."""
        return run_cli(args, self.work, self.home, timeout=timeout, **(services or {}))


@pytest.fixture(scope="module")
def matrix():
    rows = Matrix()
    yield rows
    if rows.rows:
        MATRIX_FILE.parent.mkdir(parents=True, exist_ok=True)
        MATRIX_FILE.write_text(
            "# Bad-input matrix (observed by tests/cli/test_bad_input.py)\n\n" + rows.markdown(), encoding="utf-8"
        )


@pytest.fixture(scope="module")
def services(flow_env) -> dict[str, str]:
    """The environment reaching the session's Prefect API and Dask cluster."""
    cluster, api_url = flow_env
    return {"PREFECT_API_URL": api_url, "MVARCHIVE_DASK_ADDRESS": cluster.dask_address}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, sample_data) -> Ctx:
    """The folders, the base dataset and two checkpoints. The ldmic-fast checkpoint holds the
    golden test's lively weights (non-zero symbols, no training time): every case here is
    about inputs and refusals, none about the quality of the weights."""
    from mvarchive.codecs import create_codec, save_checkpoint
    from tests.codecs.test_golden import GAINS, lively

    root = tmp_path_factory.mktemp("bad-input")
    data, work, home, out, ckpt_dir = (root / n for n in ("data", "work", "home", "out", "ckpt"))
    for folder in (data, work, home, out, ckpt_dir):
        folder.mkdir()
    base = data / "base"
    for group in ("chelsea", "coffee", "rocket"):  # 3 groups of 2: group-folders is unambiguous
        make_group(base, group, {
            cam: Image.open(sample_data.stereo / group / f"{cam}.png").convert("RGB").crop((0, 0, W, H))
            for cam in ("left", "right")
        })
    checkpoint = ckpt_dir / "ldmic" / "ldmic-fast.pt"
    save_checkpoint(lively("ldmic-fast", GAINS["ldmic-fast"]), checkpoint)
    other = ckpt_dir / "mbt.pt"
    save_checkpoint(create_codec("single-view-mbt2018-mean", "tiny"), other)
    return Ctx(root, data, work, home, out, ckpt_dir, base, os.path.relpath(checkpoint, work),
               os.path.relpath(other, work))


def _watched(ctx: Ctx) -> dict[str, dict[str, str]]:
    """What no refused command may change: the data, the checkpoints, the working directory."""
    return {"data": snapshot(ctx.data), "ckpt": snapshot(ctx.ckpt_dir), "work": snapshot(ctx.work)}


FLOW_REFUSALS: list[Run] = []  # refusals raised inside a flow run: checked for tracebacks at the end


def assert_refused(run: Run, pattern: str, code: int = 2, in_flow: bool = False) -> str:
    """Exit code, exactly one error line matching ``pattern``, no traceback; returns the line.

    ``in_flow``: the error is raised inside the Prefect flow; its traceback is checked by
    :func:`test_flow_refusals_print_no_traceback` after the runs, so that the rest of
    the case stays checked."""
    assert run.returncode == code, run.describe()
    if in_flow:
        FLOW_REFUSALS.append(run)
    else:
        assert "Traceback" not in run.output, run.describe()
    lines = run.error_lines
    assert len(lines) == 1, run.describe()
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}\n{run.describe()}"
    return lines[0]


# ---------------------------------------------------------------- fast cases: refused before any service starts


@dataclass(frozen=True)
class Case:
    id: str
    expected: str
    build: Callable[[Ctx, Path], list[str]]  # (ctx, case folder under data/) -> CLI args
    pattern: str
    dest: str | None = None  # folder under out/ that must stay as it was


def _copy_base(ctx: Ctx, folder: Path) -> Path:
    return copy_tree(ctx.base, folder)


def _archive(ctx: Ctx, folder: Path, *extra: str, checkpoint: str | None = None, dest: str | None = None) -> list[str]:
    """``archive ../data/<case> ../out/<case>`` with the trained tiny checkpoint."""
    return ["archive", ctx.rel(folder), ctx.rel(ctx.out / (dest or folder.name)), "--codec", "ldmic-fast",
            "--preset", "tiny", "--checkpoint", checkpoint or ctx.checkpoint, *extra]


def _manifest(folder: Path, groups: list[tuple[str, dict[str, str]]], text: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"groups": [{"name": name, "views": views} for name, views in groups]}
    (folder / "manifest.json").write_text(text if text is not None else json.dumps(doc), encoding="utf-8")


def build_missing_camera(ctx, folder):
    _copy_base(ctx, folder)
    (folder / "rocket" / "right.png").unlink()
    return _archive(ctx, folder)


def build_zero_byte(ctx, folder):
    _copy_base(ctx, folder)
    (folder / "chelsea" / "left.png").write_bytes(b"")
    return _archive(ctx, folder)


def build_duplicate_stem(ctx, folder):
    _copy_base(ctx, folder)
    Image.open(folder / "coffee" / "left.png").save(folder / "coffee" / "left.jpg", quality=90)
    return _archive(ctx, folder)


def _base_views(group: str) -> dict[str, str]:
    return {cam: f"{group}/{cam}.png" for cam in ("left", "right")}


def build_manifest_duplicate_group(ctx, folder):
    _copy_base(ctx, folder)
    _manifest(folder, [("chelsea", _base_views("chelsea")), ("coffee", _base_views("coffee")),
                       ("chelsea", _base_views("rocket"))])
    return _archive(ctx, folder)


def build_manifest_same_file(ctx, folder):
    _copy_base(ctx, folder)
    _manifest(folder, [("a", _base_views("chelsea")), ("b", _base_views("chelsea"))])
    return _archive(ctx, folder)


def build_manifest_case_clash(ctx, folder):
    _copy_base(ctx, folder)
    shutil.copytree(folder / "chelsea", folder / "CHELSEA")
    _manifest(folder, [("lower", _base_views("chelsea")), ("upper", _base_views("CHELSEA"))])
    return _archive(ctx, folder)


def build_manifest_missing_file(ctx, folder):
    _copy_base(ctx, folder)
    _manifest(folder, [("chelsea", _base_views("chelsea")),
                       ("coffee", {"left": "coffee/left.png", "right": "coffee/rihgt.png"})])
    return _archive(ctx, folder)


def build_manifest_not_image(ctx, folder):
    _copy_base(ctx, folder)
    (folder / "notes.txt").write_text("calibration notes\n")
    _manifest(folder, [("chelsea", _base_views("chelsea")),
                       ("coffee", {"left": "coffee/left.png", "right": "notes.txt"})])
    return _archive(ctx, folder)


def build_manifest_invalid_json(ctx, folder):
    _copy_base(ctx, folder)
    _manifest(folder, [], text='{"groups": [{"name": "chelsea", "views": {"left": "chelsea/left.png"')
    return _archive(ctx, folder)


def build_source_missing(ctx, folder):
    return _archive(ctx, folder)  # never created


def build_one_camera(ctx, folder):
    _copy_base(ctx, folder)
    for group in ("chelsea", "coffee", "rocket"):
        (folder / group / "right.png").unlink()
    return _archive(ctx, folder)


def build_flat_folder(ctx, folder):
    folder.mkdir()
    for group in ("chelsea", "coffee"):
        for cam in ("left", "right"):
            shutil.copy(ctx.base / group / f"{cam}.png", folder / f"{group}_{cam}.png")
    return _archive(ctx, folder)


def build_unknown_codec(ctx, folder):
    args = _archive(ctx, ctx.base, dest=folder.name)
    args[args.index("ldmic-fast")] = "ldmic-fats"
    return args


def build_ckpt_other_codec(ctx, folder):
    return _archive(ctx, ctx.base, checkpoint=ctx.other_checkpoint, dest=folder.name)


def _bad_checkpoint(ctx: Ctx, folder: Path, name: str, data: bytes) -> list[str]:
    folder.mkdir()
    (folder / name).write_bytes(data)
    return _archive(ctx, ctx.base, checkpoint=ctx.rel(folder / name), dest=folder.name)


def build_ckpt_random(ctx, folder):
    return _bad_checkpoint(ctx, folder, "random.pt", np.random.default_rng(1).bytes(4096))


def build_ckpt_png(ctx, folder):
    return _bad_checkpoint(ctx, folder, "photo.pt", (ctx.base / "chelsea" / "left.png").read_bytes())


def build_ckpt_empty(ctx, folder):
    return _bad_checkpoint(ctx, folder, "empty.pt", b"")


def build_ckpt_truncated(ctx, folder):
    good = (ctx.work / ctx.checkpoint).read_bytes()
    return _bad_checkpoint(ctx, folder, "cut.pt", good[: len(good) // 2])


def build_ckpt_missing(ctx, folder):
    return _archive(ctx, ctx.base, checkpoint=ctx.rel(folder / "nowhere.pt"), dest=folder.name)


def build_dest_not_archive(ctx, folder):
    dest = ctx.out / folder.name
    dest.mkdir()
    (dest / "holiday.jpg").write_bytes(b"not mine to overwrite")
    return _archive(ctx, ctx.base, dest=folder.name)


def build_train_missing_camera(ctx, folder):
    _copy_base(ctx, folder)
    (folder / "coffee" / "left.png").unlink()
    return ["train", ctx.rel(folder), "--out", ctx.rel(ctx.out / folder.name), "--codec", "ldmic-fast",
            "--preset", "tiny", "--steps", "2", "--crop", "64", "--batch-size", "1"]


def build_info_not_archive(ctx, folder):
    return ["info", ctx.rel(ctx.base)]


def build_restore_not_archive(ctx, folder):
    return ["restore", ctx.rel(ctx.base), ctx.rel(ctx.out / folder.name)]


def build_verify_missing(ctx, folder):
    return ["verify", ctx.rel(ctx.out / "no-such-archive")]


FAST_CASES = [
    Case("camera missing from one group", "refused, group named", build_missing_camera,
         r"group 'rocket' has no view for camera\(s\) right", dest="camera-missing"),
    Case("zero-byte file", "refused, file named", build_zero_byte,
         r"empty file.*zero-byte/chelsea/left\.png", dest="zero-byte"),
    Case("duplicate names: left.png and left.jpg in one group", "refused, both files named", build_duplicate_stem,
         r"duplicate-stem/coffee: two images with the same name 'left': left\.(png|jpg) and left\.(jpg|png)",
         dest="duplicate-stem"),
    Case("duplicate names: manifest lists a group twice", "refused, group named", build_manifest_duplicate_group,
         r"listed more than once: chelsea", dest="manifest-duplicate-group"),
    Case("duplicate names: two manifest groups, one file", "refused, groups and file named", build_manifest_same_file,
         r"group 'a' camera 'left' and group 'b' camera 'left' both map to 'chelsea/left\.png'",
         dest="manifest-same-file"),
    Case("duplicate names: differ only in case (chelsea/ vs CHELSEA/)", "refused (one file on case-insensitive disks)",
         build_manifest_case_clash, r"group 'upper' camera 'left' both map to 'CHELSEA/left\.png'",
         dest="manifest-case-clash"),
    Case("manifest: missing file", "refused, file named", build_manifest_missing_file,
         r"group 'coffee' camera 'right': file not found: coffee/rihgt\.png", dest="manifest-missing-file"),
    Case("manifest: non-image file", "refused, file named", build_manifest_not_image,
         r"group 'coffee' camera 'right': 'notes\.txt' is not an image file", dest="manifest-not-image"),
    Case("manifest: invalid JSON", "refused, manifest named", build_manifest_invalid_json,
         r"manifest-invalid-json/manifest\.json: invalid JSON", dest="manifest-invalid-json"),
    Case("source folder missing", "refused, folder named", build_source_missing,
         r"dataset not found: .*source-missing", dest="source-missing"),
    Case("one camera only", "refused, dataset named", build_one_camera,
         r"one-camera .*1 camera\(s\) \(left\)", dest="one-camera"),
    Case("images directly in the folder", "refused, folder named", build_flat_folder,
         r"no images found under .*flat-folder \(4 image\(s\) lie directly in the folder", dest="flat-folder"),
    Case("unknown codec", "refused, codec named", build_unknown_codec, r"ldmic-fats", dest="unknown-codec"),
    Case("checkpoint of another codec", "refused, checkpoint and codecs named", build_ckpt_other_codec,
         r"mbt\.pt holds codec 'single-view-mbt2018-mean', not 'ldmic-fast'", dest="ckpt-other-codec"),
    Case("checkpoint: random bytes", "refused, file named", build_ckpt_random,
         r"random\.pt is not an mvarchive checkpoint", dest="ckpt-random"),
    Case("checkpoint: a PNG renamed .pt", "refused, file named", build_ckpt_png,
         r"photo\.pt is not an mvarchive checkpoint", dest="ckpt-png"),
    Case("checkpoint: empty file", "refused, file named", build_ckpt_empty,
         r"empty\.pt is not an mvarchive checkpoint", dest="ckpt-empty"),
    Case("checkpoint: truncated", "refused, file named", build_ckpt_truncated,
         r"cut\.pt is not an mvarchive checkpoint", dest="ckpt-truncated"),
    Case("checkpoint: missing", "refused, file named", build_ckpt_missing,
         r"checkpoint not found: .*nowhere\.pt", dest="ckpt-missing"),
    Case("destination holds other files", "refused, destination untouched", build_dest_not_archive,
         r"dest-not-archive exists and is not an mvarchive archive", dest="dest-not-archive"),
    Case("train: camera missing from one group", "refused before training, group named", build_train_missing_camera,
         r"group 'coffee' has no view for camera\(s\) left", dest="train-missing-camera"),
    Case("info: a dataset folder, not an archive", "refused, folder named", build_info_not_archive,
         r"data/base"),
    Case("restore: a dataset folder, not an archive", "refused, nothing written", build_restore_not_archive,
         r"data/base", dest="restore-not-archive"),
    Case("verify: archive missing", "refused, path named", build_verify_missing, r"no-such-archive"),
]


def _slug(case: Case) -> str:
    return case.dest or re.sub(r"[^a-z0-9]+", "-", case.id.lower()).strip("-")


@dataclass
class FastRuns:
    """Every fast case built, then run two at a time; snapshots taken before the first and
    after the last run. Each run is the installed script's entry point with the case's
    arguments, working directory and environment, in a child forked from one interpreter that
    imported torch, CompressAI, Prefect and MLflow once (``tests/warm_cli.py``): a separate
    interpreter per case spent ~10 s of its ~11 s on start-up and imports."""

    runs: dict[str, Run]
    dest_before: dict[str, dict[str, str]]
    dest_after: dict[str, dict[str, str]]
    watched_before: dict[str, dict[str, str]]
    watched_after: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def warm(ctx: Ctx) -> Iterator[WarmCli]:
    """The script's entry point in children forked from one warmed interpreter, with the
    environment of :meth:`Ctx.cli` without services: for commands refused before any starts."""
    with WarmCli(cli_env(ctx.home)) as cli:
        yield cli


@pytest.fixture(scope="module")
def fast_runs(ctx: Ctx, warm: WarmCli) -> FastRuns:
    args = {_slug(case): case.build(ctx, ctx.data / _slug(case)) for case in FAST_CASES}
    dests = {_slug(case): ctx.out / case.dest for case in FAST_CASES if case.dest}
    dest_before = {slug: snapshot(dest) for slug, dest in dests.items()}
    watched_before = _watched(ctx)
    runs = warm.run_many(args, ctx.work, parallel=2)
    return FastRuns(runs, dest_before, {slug: snapshot(dest) for slug, dest in dests.items()},
                    watched_before, _watched(ctx))


@pytest.mark.parametrize("case", FAST_CASES, ids=_slug)
def test_refused_before_any_service(case: Case, fast_runs: FastRuns, matrix: Matrix):
    slug = _slug(case)
    run = fast_runs.runs[slug]
    line = assert_refused(run, case.pattern)
    matrix.add(case.id, case.expected, line)
    assert fast_runs.watched_after == fast_runs.watched_before, "the source, checkpoints or working directory changed"
    if slug in fast_runs.dest_before:
        assert fast_runs.dest_after[slug] == fast_runs.dest_before[slug], f"{case.dest} changed"
    assert run.seconds < 120, f"a refusal before any service should be quick: {run.seconds:.0f} s"


# ---------------------------------------------------------------- preflight: refused after reading pixels (slow)


@pytest.mark.slow
def test_preflight_names_every_unreadable_group(ctx: Ctx, matrix: Matrix):
    """One run, five bad groups: the preflight reads every image before the archive exists."""
    folder = ctx.data / "unreadable"
    _copy_base(ctx, folder)
    shutil.rmtree(folder / "rocket")
    good = png_bytes(rgb(H, W, 3))
    make_group(folder, "truncated", {"left": truncated(good), "right": good})
    make_group(folder, "corrupt", {"left": good, "right": corrupt_pixels(png_bytes(rgb(H, W, 4)))})
    make_group(folder, "notimage", {"left": b"GIF89a? no: a text file saved as .png\n" * 20, "right": good})
    make_group(folder, "sixteenbit", {"left": sixteen_bit(H, W), "right": sixteen_bit(H, W)})
    make_group(folder, "mismatched", {"left": good, "right": rgb(64, 96, 5)})
    cases = [
        ("truncated PNG", r"unreadable/truncated/left\.png: corrupt or truncated image"),
        ("corrupt pixel data", r"unreadable/corrupt/right\.png: corrupt or truncated image"),
        ("non-image file named .png", r"unreadable/notimage/left\.png: not a readable image"),
        ("16-bit image", r"unreadable/sixteenbit/left\.png: 16-bit images are not supported"),
        ("mismatched sizes", r"group 'mismatched': views differ in size: left 96x128, right 64x96"),
    ]
    dest = ctx.out / "unreadable"
    before = _watched(ctx)
    run = ctx.cli(_archive(ctx, folder))
    line = assert_refused(run, r"5 group\(s\) cannot be archived, nothing was written", in_flow=True)
    for case, pattern in cases:
        part = next((p for p in line.split("; ") if re.search(pattern, p)), None)
        assert part is not None, f"{case}: {pattern!r} not in {line!r}"
        matrix.add(case, "refused by the preflight, file or group named, nothing written", part)
    assert not dest.exists(), snapshot(dest)
    assert _watched(ctx) == before


@pytest.mark.slow
def test_oversized_image_is_refused_not_killed(ctx: Ctx, services: dict[str, str], matrix: Matrix):
    """A 10000x10000 view (300 MB of pixels, 0.3 MB of PNG) stops at the header, under --max-pixels."""
    folder = ctx.data / "huge"
    _copy_base(ctx, folder)
    huge = huge_black_png(10_000)
    make_group(folder, "huge", {"left": huge, "right": huge})
    before = _watched(ctx)
    run = ctx.cli(_archive(ctx, folder), services=services)
    line = assert_refused(run, r"huge/huge/left\.png: 10000x10000 image has 100\.0 MP, over the 16\.0 MP limit",
                          in_flow=True)
    matrix.add("10000x10000 image", "refused (--max-pixels), never killed, nothing written", line)
    assert not (ctx.out / "huge").exists()
    assert _watched(ctx) == before


# ---------------------------------------------------------------- accepted inputs: archived and restored (slow)

ACCEPTED = {  # group -> (camera -> path relative to the manifest), for the manifest dataset
    "gray": {"left": "gray/left.png", "right": "gray/right.png"},
    "palette": {"left": "palette/left.png", "right": "palette/right.png"},
    "rgba": {"left": "rgba/left.png", "right": "rgba/right.png"},
    "café au lait": {"left": "café au lait/vue gauche.png", "right": "café au lait/vue droite.png"},
    "tiny32": {"left": "tiny32/left.png", "right": "tiny32/right.png"},
    "../escape": {"left": "../outside/left.png", "right": "../outside/right.png"},
    "absolute": {},  # filled with absolute paths
}
EXPECTED_NAMES = {  # what restore writes under OUT
    "gray": ["gray/left.png", "gray/right.png"],
    "palette": ["palette/left.png", "palette/right.png"],
    "rgba": ["rgba/left.png", "rgba/right.png"],
    "café au lait": ["café au lait/vue gauche.png", "café au lait/vue droite.png"],
    "tiny32": ["tiny32/left.png", "tiny32/right.png"],
    "../escape": [".._escape/left.png", ".._escape/right.png"],
    "absolute": ["absolute/left.png", "absolute/right.png"],
}


@dataclass
class Accepted:
    folder: Path  # the manifest's folder
    archive: Path
    run: Run


@pytest.fixture(scope="module")
def accepted(ctx: Ctx, services: dict[str, str]) -> Accepted:
    folder = ctx.data / "accepted"
    folder.mkdir()
    pic = [rgb(H, W, 10 + i) for i in range(2)]
    for i, cam in enumerate(("left", "right")):
        (folder / "gray").mkdir(exist_ok=True)
        pic[i].convert("L").save(folder / "gray" / f"{cam}.png")
        (folder / "palette").mkdir(exist_ok=True)
        pic[i].convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(folder / "palette" / f"{cam}.png")
        (folder / "rgba").mkdir(exist_ok=True)
        rgba = pic[i].convert("RGBA")
        rgba.putalpha(128)
        rgba.save(folder / "rgba" / f"{cam}.png")
        (folder / "tiny32").mkdir(exist_ok=True)
        pic[i].resize((32, 32)).save(folder / "tiny32" / f"{cam}.png")
    (folder / "café au lait").mkdir()
    pic[0].save(folder / "café au lait" / "vue gauche.png")
    pic[1].save(folder / "café au lait" / "vue droite.png")
    outside, absolute = ctx.data / "outside", ctx.data / "absolute"
    for extra in (outside, absolute):
        extra.mkdir()
        for i, cam in enumerate(("left", "right")):
            pic[i].save(extra / f"{cam}.png")
    views = dict(ACCEPTED, absolute={cam: str(absolute / f"{cam}.png") for cam in ("left", "right")})
    _manifest(folder, list(views.items()))
    archive = ctx.out / "accepted"
    before = _watched(ctx)
    run = ctx.cli(["archive", ctx.rel(folder), ctx.rel(archive), "--codec", "ldmic-fast", "--preset", "tiny",
                   "--checkpoint", ctx.checkpoint, "--shard-size", "4"], services=services)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output, run.describe()
    assert _watched(ctx) == before
    return Accepted(folder, archive, run)


NOTICES = [  # case, file, notice
    ("grayscale (L)", "gray/left.png", "8-bit grayscale (L) converted to RGB"),
    ("palette (P)", "palette/left.png", "palette image (P) converted to RGB"),
    ("RGBA", "rgba/left.png", "RGBA converted to RGB; the alpha channel was dropped"),
]


@pytest.mark.slow
def test_accepted_inputs_archive_and_restore_under_their_names(
    ctx: Ctx, accepted: Accepted, services: dict[str, str], matrix: Matrix,
):
    from mvarchive.datasets import load_image

    info = ctx.cli(["info", ctx.rel(accepted.archive), "--json"], services=services)
    assert info.returncode == 0, info.describe()
    meta = json.loads(info.stdout)
    assert meta["complete"] and meta["group_names"] == list(ACCEPTED)

    out = ctx.out / "accepted-restored"
    before = _watched(ctx)
    outside_before = snapshot(ctx.out)
    run = ctx.cli(["restore", ctx.rel(accepted.archive), ctx.rel(out)], services=services)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output, run.describe()
    assert _watched(ctx) == before
    # nothing written outside OUT (the ../escape group, the absolute paths)
    after = snapshot(ctx.out)
    assert {k: v for k, v in after.items() if not k.startswith("accepted-restored")} == outside_before
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(n for names in EXPECTED_NAMES.values() for n in names)
    for group, names in EXPECTED_NAMES.items():
        for name in names:
            image = load_image(str(out / name))
            assert image.shape == ((32, 32, 3) if group == "tiny32" else (H, W, 3))
    for case, name, _ in NOTICES:
        matrix.add(case, "archived and restored as RGB, notice names the file",
                   f"restored as RGB {name}; notice: see 'conversion notice' row")
    matrix.add("unicode and space in names (café au lait/vue gauche.png)", "archived, restored under the same name",
               "restored as " + ", ".join(EXPECTED_NAMES["café au lait"]))
    matrix.add("32x32 image", "archived and restored at 32x32", "restored as tiny32/left.png, tiny32/right.png (32x32)")
    matrix.add("manifest view at ../outside/left.png, group '../escape'", "stored and restored inside OUT",
               "restored as " + ", ".join(EXPECTED_NAMES["../escape"]) + "; nothing outside OUT")
    matrix.add("manifest view at an absolute path", "stored and restored inside OUT",
               "restored as " + ", ".join(EXPECTED_NAMES["absolute"]) + "; nothing outside OUT")


def _restore_refused(ctx: Ctx, warm: WarmCli, args: list[str], dest: Path, pattern: str) -> str:
    before, dest_before = _watched(ctx), snapshot(dest)
    run = warm.run(args, ctx.work, timeout=300)
    line = assert_refused(run, pattern)
    assert _watched(ctx) == before
    assert snapshot(dest) == dest_before
    return line


@pytest.mark.slow
def test_restore_refuses_existing_files(ctx: Ctx, warm: WarmCli, accepted: Accepted, matrix: Matrix):
    out = ctx.out / "existing"
    (out / "gray").mkdir(parents=True)
    (out / "gray" / "left.png").write_bytes(b"a file of the user's")
    line = _restore_refused(ctx, warm, ["restore", ctx.rel(accepted.archive), ctx.rel(out)], out,
                            r"restore would overwrite 1 existing file\(s\) in .*existing: gray/left\.png; "
                            r"pass --overwrite")
    matrix.add("restore over existing files", "refused without --overwrite, files named", line)


@pytest.mark.slow
def test_restore_refuses_the_source_folder(ctx: Ctx, warm: WarmCli, accepted: Accepted, matrix: Matrix):
    out = accepted.folder / "restored"
    line = _restore_refused(ctx, warm, ["restore", ctx.rel(accepted.archive), ctx.rel(out)], out,
                            r"refusing to restore into .*accepted/restored: it overlaps the source dataset")
    matrix.add("restore into the source dataset", "refused, nothing written", line)


@pytest.mark.slow
def test_restore_refuses_another_codecs_checkpoint(ctx: Ctx, warm: WarmCli, accepted: Accepted, matrix: Matrix):
    out = ctx.out / "other-ckpt-restored"
    line = _restore_refused(ctx, warm, ["restore", ctx.rel(accepted.archive), ctx.rel(out), "--checkpoint",
                                  ctx.other_checkpoint], out,
                            r"needs the ldmic-fast \(tiny\) weights .*mbt\.pt holds codec 'single-view-mbt2018-mean'")
    matrix.add("restore --checkpoint of another codec", "refused, checkpoint named", line)


# ---------------------------------------------------------------- damaged bitstreams (slow)

DAMAGE = {"gray": "bit-flipped stream", "palette": "truncated stream", "rgba": "foreign stream (single-view codec)"}


@pytest.fixture(scope="module")
def damaged(ctx: Ctx, accepted: Accepted) -> Path:
    from mvarchive.codecs import create_codec
    from mvarchive.datasets import discover_dataset, load_group
    from mvarchive.metrics import to_tensor

    archive = ctx.out / "damaged"
    shutil.copytree(accepted.archive, archive)
    names = group_names(archive)
    flipped = bytearray(get_stream(archive, names.index("gray")))
    flipped[len(flipped) // 2] ^= 0x10
    set_stream(archive, names.index("gray"), bytes(flipped))
    cut = get_stream(archive, names.index("palette"))
    set_stream(archive, names.index("palette"), cut[: len(cut) // 2])
    foreign = create_codec("single-view-mbt2018-mean", "tiny")
    foreign.update(force=True)
    foreign.eval()
    group = next(g for g in discover_dataset(str(accepted.folder)).groups if g.name == "rgba")
    set_stream(archive, names.index("rgba"), foreign.compress(to_tensor(load_group(group))).data)
    return archive


@pytest.mark.slow
def test_verify_names_every_damaged_group(ctx: Ctx, damaged: Path, services: dict[str, str], matrix: Matrix):
    before, archive_before = _watched(ctx), snapshot(damaged)
    run = ctx.cli(["verify", ctx.rel(damaged)], services=services)
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.output, run.describe()
    err = run.stderr.splitlines()
    for group, case in DAMAGE.items():
        line = next((ln for ln in err if re.search(rf"\b{group}\b", ln) and "ok" != ln.strip()), None)
        assert line is not None, f"verify does not name {group}:\n{run.describe()}"
        matrix.add(f"{case}: verify", "exit 1, group named", line.strip())
    assert re.search(r"verified 7 groups .*4 ok", run.stdout), run.describe()
    assert snapshot(damaged) == archive_before and _watched(ctx) == before


@pytest.mark.slow
def test_restore_writes_nothing_for_damaged_groups(ctx: Ctx, damaged: Path, services: dict[str, str], matrix: Matrix):
    out = ctx.out / "damaged-restored"
    before, archive_before = _watched(ctx), snapshot(damaged)
    run = ctx.cli(["restore", ctx.rel(damaged), ctx.rel(out)], services=services)
    line = assert_refused(run, r"3 of 7 group\(s\) failed verification and were not written", in_flow=True)
    for group, case in DAMAGE.items():
        assert re.search(rf"\b{group}\b", line), f"{group} not named in {line!r}"
        assert not (out / group).exists(), f"{group} was written"
        matrix.add(f"{case}: restore", "refused, group named, nothing written for it",
                   next(p for p in line.split("; ") if re.search(rf"\b{group}\b", p)))
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(n for g, names in EXPECTED_NAMES.items() if g not in DAMAGE for n in names)
    assert snapshot(damaged) == archive_before and _watched(ctx) == before


# ---------------------------------------------------------------- what a refusal inside a flow run prints


@pytest.mark.slow
def test_flow_refusals_print_no_traceback(matrix: Matrix):
    if not FLOW_REFUSALS:
        pytest.skip("no flow-run refusal ran in this session")
    noisy = [run for run in FLOW_REFUSALS if "Traceback" in run.output]
    for run in noisy:
        matrix.add(f"(bug) traceback before the error line: mvarchive {run.args[0]}", "one line, no traceback",
                   next((ln for ln in run.stderr.splitlines() if "Traceback" in ln), "")[:160] + " ... Traceback")
    assert not noisy, "\n\n".join(run.describe() for run in noisy)


@pytest.mark.slow
def test_conversion_notice_names_the_file(accepted: Accepted, matrix: Matrix):
    log_lines = accepted.run.stderr.splitlines()
    missing = []
    for case, name, notice in NOTICES:
        line = next((ln for ln in log_lines if name in ln and notice in ln), None)
        matrix.add(f"{case}: conversion notice", "a notice naming the file on stderr",
                   line.strip() if line else f"(bug) no notice on stderr for {name}")
        if line is None:
            missing.append(name)
    assert not missing, f"no notice naming {missing}:\n{accepted.run.describe()}"
