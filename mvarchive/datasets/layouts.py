"""Find the multi-camera groups of a dataset stored on any fsspec filesystem.

A *group* is one moment captured by several cameras (a stereo pair, one frame
of a fleet rig); a *view* is one camera's image in a group. Datasets come in a
few common folder layouts, which this module turns into one
:class:`DatasetIndex` so that the rest of the pipeline never looks at folders.
Discovery only lists and reads small metadata files; images are not opened.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import posixpath
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from mvarchive.datasets.errors import DatasetError
from mvarchive.datasets.images import IMAGE_EXTENSIONS

__all__ = [
    "LAYOUTS",
    "MANIFEST_NAMES",
    "ViewRef",
    "GroupRef",
    "DatasetIndex",
    "discover_dataset",
]

#: Accepted values for ``layout=`` in :func:`discover_dataset`.
LAYOUTS: tuple[str, ...] = ("auto", "camera-folders", "group-folders", "manifest")

#: File names looked for at the dataset root to detect the manifest layout.
MANIFEST_NAMES: tuple[str, ...] = ("manifest.json", "manifest.csv")

_MANIFEST_EXTENSIONS = (".json", ".csv")
_MAX_LISTED = 5  # problems quoted in one error message before summarising
_IMAGE_SUFFIXES = frozenset(IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class ViewRef:
    """One camera's image in a group.

    ``url`` is what ``load_image`` reads (absolute, however the dataset path was typed);
    ``name`` is the file's path relative to the dataset root, computed once at discovery:
    it is what an archive stores and what restore recreates. ``size`` is the file's byte
    size from the listing (part of an archive job's identity), ``None`` when unknown.
    """

    camera: str
    url: str
    name: str = ""
    size: int | None = None


@dataclass(frozen=True)
class GroupRef:
    """One multi-camera capture: its name and its views in the dataset's camera order."""

    name: str
    views: tuple[ViewRef, ...]

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names of the views, in order."""
        return tuple(v.camera for v in self.views)

    def view(self, camera: str) -> ViewRef:
        """The view of ``camera``; raises :class:`DatasetError` if the group lacks it."""
        for v in self.views:
            if v.camera == camera:
                return v
        raise DatasetError(
            f"group {self.name!r} has no camera {camera!r} (has: {', '.join(self.cameras)})"
        )


@dataclass(frozen=True)
class DatasetIndex:
    """Every group of a dataset, all with the same cameras in the same order."""

    url: str
    layout: str
    cameras: tuple[str, ...]
    groups: tuple[GroupRef, ...]

    @property
    def group_names(self) -> tuple[str, ...]:
        """Names of the groups, in order."""
        return tuple(g.name for g in self.groups)

    def select(
        self,
        groups: Sequence[str] | None = None,
        cameras: Sequence[str] | None = None,
    ) -> DatasetIndex:
        """A sub-index with only the named groups and/or cameras.

        ``None`` keeps everything. Names are returned in the order asked for,
        so ``cameras`` can also reorder views (e.g. to pick the reference view
        of a multi-view codec). Unknown or repeated names raise
        :class:`DatasetError` listing the known ones, because a typo must not
        silently shrink an archive.
        """
        group_names = self.group_names
        picked_groups = _pick(groups, group_names, "group", self.url)
        picked_cams = _pick(cameras, self.cameras, "camera", self.url)
        by_name = dict(zip(group_names, self.groups))
        new_groups = tuple(
            replace(g, views=tuple(g.view(c) for c in picked_cams))
            for g in (by_name[n] for n in picked_groups)
        )
        return replace(self, cameras=picked_cams, groups=new_groups)


def _pick(
    wanted: Sequence[str] | None, known: tuple[str, ...], what: str, url: str
) -> tuple[str, ...]:
    """Validate a user selection against the known names."""
    if wanted is None:
        return known
    names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    if not names:
        raise DatasetError(f"{url}: empty {what} selection; pass None to keep all")
    known_set = set(known)
    unknown = [n for n in names if n not in known_set]
    if unknown:
        raise DatasetError(
            f"{url}: unknown {what}(s) {', '.join(map(repr, unknown[:_MAX_LISTED]))}; "
            f"known {what}s: {_preview(known)}"
        )
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        raise DatasetError(f"{url}: {what}(s) selected more than once: {', '.join(dupes)}")
    return names


def _preview(names: Sequence[str], limit: int = 20) -> str:
    """Comma-separated names, shortened for error messages."""
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``cam2`` before ``cam10`` and ``frame_9`` before ``frame_10``."""
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, part.lower(), part)
        for part in re.split(r"(\d+)", name)
        if part
    )


def _is_image(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in _IMAGE_SUFFIXES


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


class _Locator:
    """Turns filesystem paths back into URLs in the style the caller used.

    Plain local paths stay plain paths; anything given as a URL (``file://``,
    ``s3://``, ``memory://``) gives URLs with the same protocol.
    """

    def __init__(self, fs: AbstractFileSystem, plain_local: bool) -> None:
        self.fs = fs
        self.plain_local = plain_local

    def url(self, path: str) -> str:
        if self.plain_local:
            return path
        return self.fs.unstrip_protocol(path)


def _listdir(fs: AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    """Entries directly inside ``path`` (empty when it does not exist)."""
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    root = path.rstrip("/")
    return [e for e in entries if e["name"].rstrip("/") != root]


class _Entry(NamedTuple):
    """One listed file or folder: its base name, filesystem path and byte size (files only).
    A named tuple: 100,000 of them are built in a fraction of a frozen dataclass's time."""

    name: str
    path: str
    is_dir: bool
    size: int | None = None


@dataclass(frozen=True)
class _Tree:
    """The dataset root's entries and, for each of its non-hidden folders, that folder's entries
    (None when only the root was listed)."""

    top: list[_Entry]
    children: dict[str, list[_Entry]] | None


def _child_path(root: str, name: str) -> str:
    return (root if root.endswith("/") else root + "/") + name


def _scan_local(root: str, children: bool) -> _Tree:
    """Two levels of a local folder with ``os.scandir``: one system call per folder and one
    ``stat`` per file, no per-file path normalisation. Symbolic links are followed (a linked camera
    folder is a camera folder); a broken link reads as a 0-byte file, which discovery refuses."""

    def scan(folder: str, sizes: bool) -> list[_Entry]:
        entries = []
        with os.scandir(folder) as it:
            for e in it:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                size = None
                if sizes and not is_dir:
                    try:
                        size = e.stat().st_size
                    except OSError:
                        size = 0
                entries.append(_Entry(e.name, _child_path(folder, e.name), is_dir, size))
        return entries

    try:
        top = scan(root, sizes=False)
    except FileNotFoundError:
        return _Tree([], {})
    if not children:
        return _Tree(top, None)
    inside = {}
    for entry in top:
        if entry.is_dir and not _is_hidden(entry.name):
            try:
                inside[entry.name] = scan(entry.path, sizes=True)
            except FileNotFoundError:  # removed while listing
                inside[entry.name] = []
    return _Tree(top, inside)


def _s3_objects(fs: AbstractFileSystem, root: str) -> list[dict[str, Any]] | None:
    """Every object under ``root`` from one delimiter-less S3 listing (1,000 keys a request), or
    None when ``fs`` is not s3fs. s3fs's public ``find`` builds its directory cache with a list
    membership test per folder, which is quadratic in the number of group folders (minutes at
    50,000); its ``_lsdir`` is the same listing without that."""
    lsdir = getattr(fs, "_lsdir", None)
    if lsdir is None or type(fs).__module__.split(".")[0] != "s3fs":
        return None
    from fsspec.asyn import sync

    return sync(fs.loop, lsdir, root, delimiter="")


def _scan_flat(objects: list[dict[str, Any]], root: str) -> _Tree:
    """Two levels of an object-store prefix from its flat object listing (objects deeper down
    only show that their folder exists; keys ending in ``/`` are folder markers)."""
    root = root.rstrip("/")
    cut = len(root) + 1
    top: dict[str, _Entry] = {}
    children: dict[str, dict[str, _Entry]] = {}
    for info in objects:
        key = info["name"]
        marker = key.endswith("/")
        path = key.rstrip("/")
        if not path.startswith(root + "/"):
            continue
        parts = path[cut:].split("/", 2)
        if len(parts) == 1:
            if parts[0] not in top or marker:
                top[parts[0]] = _Entry(parts[0], path, marker, None if marker else info.get("size"))
            continue
        folder = parts[0]
        if folder not in top or not top[folder].is_dir:
            top[folder] = _Entry(folder, f"{root}/{folder}", True)
        inside = children.setdefault(folder, {})
        if len(parts) == 2 and not marker:
            inside[parts[1]] = _Entry(parts[1], path, False, info.get("size"))
        elif parts[1] not in inside or not inside[parts[1]].is_dir:
            inside[parts[1]] = _Entry(parts[1], f"{root}/{folder}/{parts[1]}", True)
    return _Tree(list(top.values()), {
        name: list(entries.values()) for name, entries in children.items() if not _is_hidden(name)
    })


def _scan_listing(fs: AbstractFileSystem, root: str, children: bool) -> _Tree:
    """Two levels of any other filesystem, one ``ls`` per folder."""

    def entries(path: str) -> list[_Entry]:
        return [
            _Entry(_basename(e["name"]), e["name"].rstrip("/"), e.get("type") == "directory", e.get("size"))
            for e in _listdir(fs, path)
        ]

    top = entries(root)
    if not children:
        return _Tree(top, None)
    return _Tree(top, {e.name: entries(e.path) for e in top if e.is_dir and not _is_hidden(e.name)})


def _scan_tree(fs: AbstractFileSystem, root: str, children: bool = True) -> _Tree:
    """The root folder and (with ``children``) one level below it, the cheapest way the filesystem
    allows: a scandir walk on local disk, one flat listing on S3 (always both levels: the same
    requests), one ``ls`` per folder elsewhere."""
    if isinstance(fs, LocalFileSystem):
        return _scan_local(root, children)
    objects = _s3_objects(fs, root)
    if objects is not None:
        return _scan_flat(objects, root)
    return _scan_listing(fs, root, children)


@dataclass
class _Folder:
    """Images directly inside one sub-folder of the dataset root, keyed by stem."""

    name: str
    path: str
    images: dict[str, _Entry]


def _scan_subfolders(tree: _Tree, url: str) -> tuple[list[_Folder], int]:
    """Sub-folders of the root that hold images, and the count of images at the root itself.

    Hidden entries and non-image files are ignored; sub-folders without images
    are skipped with a warning so a stray ``calib/`` folder does not become a camera.
    """
    log = logging.getLogger("mvarchive.datasets")
    folders: list[_Folder] = []
    top_images = 0
    for entry in tree.top:
        if _is_hidden(entry.name):
            continue
        if not entry.is_dir:
            top_images += _is_image(entry.name)
            continue
        images: dict[str, _Entry] = {}
        for sub in (tree.children or {}).get(entry.name, ()):
            fname = sub.name
            stem, dot, ext = fname.rpartition(".")  # posixpath.splitext for names not starting with "."
            if sub.is_dir or not stem or _is_hidden(fname) or f".{ext.lower()}" not in _IMAGE_SUFFIXES:
                continue
            if stem in images:
                raise DatasetError(
                    f"{entry.path}: two images with the same name {stem!r}: "
                    f"{images[stem].name} and {fname}; keep only one"
                )
            images[stem] = sub
        if images:
            folders.append(_Folder(name=entry.name, path=entry.path, images=images))
        else:
            log.warning("%s: ignoring sub-folder %r: it holds no images", url, entry.name)
    folders.sort(key=lambda f: _natural_key(f.name))
    return folders, top_images


def _no_images(url: str, top_images: int) -> DatasetError:
    hint = (
        f" ({top_images} image(s) lie directly in the folder; a multi-camera dataset "
        "needs one sub-folder per camera or per group, or a manifest)"
        if top_images
        else ""
    )
    return DatasetError(f"no images found under {url}{hint}")


def _summarise(problems: list[str]) -> str:
    shown = "; ".join(problems[:_MAX_LISTED])
    extra = len(problems) - _MAX_LISTED
    return shown + (f"; and {extra} more" if extra > 0 else "")


def _archive_name(path: str, root: str, fallback: str) -> str:
    """A file's name in the archive: its path under ``root``, or ``fallback`` when the file
    lies outside the root (a manifest may point anywhere; restore must not follow it there)."""
    rel = posixpath.relpath(path, root)
    if rel == ".." or rel.startswith("../") or posixpath.isabs(rel):
        return fallback
    return rel


def _folder_view(camera: str, folder: _Folder, stem: str, loc: _Locator) -> ViewRef:
    """A view found in a sub-folder of the root: its archive name is ``folder/file`` as listed
    (what ``relpath`` from the root would give, without normalising 100,000 paths)."""
    entry = folder.images[stem]
    return ViewRef(camera, loc.url(entry.path), f"{folder.name}/{entry.name}", entry.size)


def _safe_part(name: str) -> str:
    """One path component made from a group or camera name (no separators, no dot-dirs)."""
    part = re.sub(r"[/\\\x00]", "_", name)
    return "_" + part if part in ("", ".", "..") else part


def unsafe_name_reason(name: str) -> str | None:
    """Why a stored file name could write outside the output folder (None when it is safe)."""
    parts = name.split("/")
    if not name or posixpath.isabs(name) or "\\" in name or "\x00" in name \
            or any(p in ("", ".", "..") for p in parts):
        return f"unsafe file name {name!r} (must be a relative path inside the output folder)"
    return None


def check_view_names(index: DatasetIndex) -> None:
    """Every view needs a distinct, relative archive name that cannot leave the output folder."""
    seen: dict[str, str] = {}
    problems = []
    for group in index.groups:
        for view in group.views:
            name = view.name
            reason = unsafe_name_reason(name)
            if reason:
                problems.append(f"group {group.name!r} camera {view.camera!r}: {reason}")
                continue
            key = name.casefold()  # a.png and A.png are one file on case-insensitive disks
            if key in seen:
                problems.append(f"{seen[key]} and group {group.name!r} camera {view.camera!r} both map to {name!r}")
            else:
                seen[key] = f"group {group.name!r} camera {view.camera!r}"
    if problems:
        raise DatasetError(f"dataset {index.url}: {len(problems)} file name problem(s): {_summarise(problems)}")


def check_empty_files(index: DatasetIndex) -> None:
    """Refuse zero-byte views at discovery (the listing has their size): no image to read,
    and no reason to start a cluster to find that out."""
    empty = [f"group {g.name!r} camera {v.camera!r}: {v.url}" for g in index.groups for v in g.views if v.size == 0]
    if empty:
        raise DatasetError(f"dataset {index.url}: {len(empty)} empty file(s) (0 bytes): {_summarise(empty)}")


def _camera_folders(folders: list[_Folder], url: str, loc: _Locator) -> DatasetIndex:
    """ROOT/<camera>/<frame>.<ext>: a group is a frame stem present in every camera."""
    cameras = tuple(f.name for f in folders)
    stems = sorted({s for f in folders for s in f.images}, key=_natural_key)
    problems = []
    for stem in stems:
        missing = [f.name for f in folders if stem not in f.images]
        if missing:
            problems.append(f"group {stem!r} is missing from camera(s) {', '.join(missing)}")
    if problems:
        raise DatasetError(
            f"camera-folders dataset {url}: {len(problems)} incomplete group(s): "
            + _summarise(problems)
        )
    groups = tuple(GroupRef(stem, tuple(_folder_view(f.name, f, stem, loc) for f in folders)) for stem in stems)
    return DatasetIndex(url=url, layout="camera-folders", cameras=cameras, groups=groups)


def _group_folders(folders: list[_Folder], url: str, loc: _Locator) -> DatasetIndex:
    """ROOT/<group>/<camera>.<ext>: each folder is a group, each file stem a camera."""
    counts: dict[str, int] = {}
    for f in folders:
        for stem in f.images:
            counts[stem] = counts.get(stem, 0) + 1
    if set(counts) == {"left", "right"}:
        cameras: tuple[str, ...] = ("left", "right")
    else:
        cameras = tuple(sorted(counts, key=_natural_key))
    problems = []
    for f in folders:
        missing = [c for c in cameras if c not in f.images]
        if missing:
            problems.append(f"group {f.name!r} has no view for camera(s) {', '.join(missing)}")
    if problems:
        seen = ", ".join(f"{c} ({counts[c]} of {len(folders)} groups)" for c in cameras)
        raise DatasetError(
            f"group-folders dataset {url}: {len(problems)} incomplete group(s): "
            f"{_summarise(problems)}. Cameras seen: {seen}"
        )
    groups = tuple(GroupRef(f.name, tuple(_folder_view(c, f, c, loc) for c in cameras)) for f in folders)
    return DatasetIndex(url=url, layout="group-folders", cameras=cameras, groups=groups)


def _parse_manifest_json(text: str, where: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """``{"groups": [{"name": ..., "views": {camera: path}}]}`` -> ordered entries."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"manifest {where}: invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise DatasetError(
            f'manifest {where}: expected an object {{"groups": [{{"name": ..., "views": '
            f'{{camera: path}}}}, ...]}}'
        )
    entries: list[tuple[str, list[tuple[str, str]]]] = []
    for i, item in enumerate(doc["groups"]):
        if not isinstance(item, dict):
            raise DatasetError(f"manifest {where}: groups[{i}] is not an object")
        name, views = item.get("name"), item.get("views")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"manifest {where}: groups[{i}] has no string 'name'")
        if not isinstance(views, dict) or not views:
            raise DatasetError(
                f"manifest {where}: group {name!r}: 'views' must be a non-empty "
                "object mapping camera to path"
            )
        pairs = []
        for cam, path in views.items():
            if not isinstance(path, str) or not path:
                raise DatasetError(
                    f"manifest {where}: group {name!r} camera {cam!r}: path must be a string"
                )
            pairs.append((str(cam), path))
        entries.append((name, pairs))
    return entries


def _parse_manifest_csv(text: str, where: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """CSV with header ``group,camera,path`` -> ordered entries."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    needed = ("group", "camera", "path")
    if any(col not in header for col in needed):
        raise DatasetError(
            f"manifest {where}: header must contain the columns group,camera,path "
            f"(found: {','.join(header) or 'nothing'})"
        )
    idx = [header.index(col) for col in needed]
    order: list[str] = []
    by_group: dict[str, list[tuple[str, str]]] = {}
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DatasetError(f"manifest {where} line {line_no}: expected {len(header)} columns")
        group, cam, path = (row[i].strip() for i in idx)
        if not group or not cam or not path:
            raise DatasetError(f"manifest {where} line {line_no}: empty group, camera or path")
        if group not in by_group:
            order.append(group)
            by_group[group] = []
        if any(c == cam for c, _ in by_group[group]):
            raise DatasetError(
                f"manifest {where} line {line_no}: group {group!r} lists camera {cam!r} twice"
            )
        by_group[group].append((cam, path))
    return [(g, by_group[g]) for g in order]


def _is_url(ref: str) -> bool:
    return "://" in ref or "::" in ref


def _manifest(
    fs: AbstractFileSystem,
    manifest_path: str,
    url: str,
    loc: _Locator,
    storage_options: dict[str, Any],
) -> DatasetIndex:
    """A dataset described by a JSON or CSV manifest; every referenced file must exist."""
    where = loc.url(manifest_path)
    try:
        text = fs.cat_file(manifest_path).decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise DatasetError(f"manifest not found: {where}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read manifest {where}: {exc}") from exc
    if manifest_path.lower().endswith(".json"):
        entries = _parse_manifest_json(text, where)
    else:
        entries = _parse_manifest_csv(text, where)

    dupes = sorted(n for n, count in Counter(g for g, _ in entries).items() if count > 1)
    if dupes:
        raise DatasetError(f"manifest {where}: group(s) listed more than once: {', '.join(dupes)}")

    cameras: list[str] = []
    for _, pairs in entries:
        for cam, _ in pairs:
            if cam not in cameras:
                cameras.append(cam)
    problems = []
    for group, pairs in entries:
        have = {c for c, _ in pairs}
        missing = [c for c in cameras if c not in have]
        if missing:
            problems.append(f"group {group!r} has no view for camera(s) {', '.join(missing)}")
    if problems:
        raise DatasetError(
            f"manifest {where}: {len(problems)} incomplete group(s): {_summarise(problems)}"
        )

    base = posixpath.dirname(manifest_path)
    listings: dict[tuple[int, str], dict[str, int | None]] = {}

    def file_size(f: AbstractFileSystem, path: str) -> int | None | bool:
        """The file's byte size (None if the listing has none), False when it does not exist.
        One listing per folder instead of one request per file."""
        parent = posixpath.dirname(path.rstrip("/"))
        key = (id(f), parent)
        if key not in listings:
            listings[key] = {
                e["name"].rstrip("/"): e.get("size") for e in _listdir(f, parent) if e.get("type") == "file"
            }
        return listings[key].get(path.rstrip("/"), False)

    resolved: dict[str, dict[str, ViewRef]] = {}
    missing_files = []
    for group, pairs in entries:
        resolved[group] = {}
        for cam, ref in pairs:
            if not _is_image(ref.split("?", 1)[0]):
                raise DatasetError(
                    f"manifest {where}: group {group!r} camera {cam!r}: {ref!r} is not an "
                    f"image file (expected one of {', '.join(IMAGE_EXTENSIONS)})"
                )
            if _is_url(ref):
                # Storage options only make sense for the manifest's own protocol.
                proto = ref.split("://", 1)[0] if "://" in ref else ""
                protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
                target_fs, target = url_to_fs(
                    ref, **(storage_options if proto in protocols else {})
                )
                view_url = ref
            else:
                if posixpath.isabs(ref):
                    target = posixpath.normpath(ref)
                else:
                    target = posixpath.normpath(posixpath.join(base, ref))
                target_fs = fs
                view_url = loc.url(target)
            size = file_size(target_fs, target)
            if size is False:
                missing_files.append(
                    f"group {group!r} camera {cam!r}: file not found: {ref} ({view_url})"
                )
            # files outside the manifest's folder (../x.png, /abs, URLs) restore under group/camera
            ext = posixpath.splitext(target)[1].lower()
            fallback = f"{_safe_part(group)}/{_safe_part(cam)}{ext}"
            name = fallback if _is_url(ref) else _archive_name(target, base, fallback)
            resolved[group][cam] = ViewRef(cam, view_url, name, None if size is False else size)
    if missing_files:
        raise DatasetError(
            f"manifest {where}: {len(missing_files)} missing file(s): "
            + _summarise(missing_files)
        )
    groups = tuple(
        GroupRef(group, tuple(resolved[group][c] for c in cameras))
        for group, _ in entries
    )
    return DatasetIndex(url=url, layout="manifest", cameras=tuple(cameras), groups=groups)


def discover_dataset(
    url: str, layout: str = "auto", storage_options: dict[str, Any] | None = None
) -> DatasetIndex:
    """Index the groups and cameras of the dataset at ``url`` without reading images.

    ``url`` is any fsspec URL or local path: a folder, or a ``.json``/``.csv``
    manifest file. ``layout`` is one of :data:`LAYOUTS`; ``"auto"`` picks the
    manifest if there is one, else compares the number of sub-folders with the
    number of images in the fullest one (few folders with many images are
    cameras, many folders with few images are groups; a tie is refused).
    Incomplete groups, missing files and ambiguous layouts raise
    :class:`DatasetError`; a dataset must have at least one group and two
    cameras.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    opts = dict(storage_options or {})
    try:
        fs, root = url_to_fs(url, **opts)
    except (ValueError, ImportError) as exc:
        raise DatasetError(f"cannot open dataset URL {url}: {exc}") from exc
    is_local = isinstance(fs, LocalFileSystem)
    if is_local:
        root = posixpath.normpath(root)
    loc = _Locator(fs, plain_local=is_local and not _is_url(url))

    try:
        is_file = fs.isfile(root)
        is_dir = not is_file and fs.isdir(root)
    except OSError as exc:
        raise DatasetError(f"cannot access dataset {url}: {exc}") from exc
    if not is_file and not is_dir:
        raise DatasetError(f"dataset not found: {url}")

    if is_file:
        if layout in ("auto", "manifest") and root.lower().endswith(_MANIFEST_EXTENSIONS):
            index = _manifest(fs, root, url, loc, opts)
        else:
            raise DatasetError(
                f"{url} is a file; expected a dataset folder or a manifest (.json or .csv)"
            )
    else:
        index = _discover_folder(fs, root, url, layout, loc, opts)

    if not index.groups:
        raise DatasetError(f"dataset {url} ({index.layout}) contains no groups")
    check_view_names(index)
    check_empty_files(index)
    if len(index.cameras) < 2:
        raise DatasetError(
            f"dataset {url} ({index.layout}) has {len(index.cameras)} camera(s) "
            f"({', '.join(index.cameras) or 'none'}); a multi-camera dataset needs at least 2"
        )
    return index


def _discover_folder(
    fs: AbstractFileSystem,
    root: str,
    url: str,
    layout: str,
    loc: _Locator,
    opts: dict[str, Any],
) -> DatasetIndex:
    """Dispatch a dataset folder to its layout reader, detecting it when ``auto``."""
    tree = _scan_tree(fs, root, children=layout not in ("auto", "manifest"))
    if layout in ("auto", "manifest"):
        # a manifest's dataset may be large and elsewhere: list the root alone first
        top = {e.name: e for e in tree.top if not e.is_dir}
        found = [n for n in MANIFEST_NAMES if n in top]
        if len(found) > 1:
            raise DatasetError(
                f"{url} holds both {' and '.join(found)}; pass the URL of the one to use"
            )
        if found:
            return _manifest(fs, top[found[0]].path, url, loc, opts)
        if layout == "manifest":
            raise DatasetError(
                f"no manifest under {url}: expected one of {', '.join(MANIFEST_NAMES)}"
            )

    if tree.children is None:
        tree = _scan_tree(fs, root)
    folders, top_images = _scan_subfolders(tree, url)
    if not folders:
        raise _no_images(url, top_images)
    if layout == "auto":
        # Compare with the fullest folder: missing files only ever lower the counts.
        n_folders = len(folders)
        counts = [len(f.images) for f in folders]
        typical = max(counts)
        if n_folders < typical:
            layout = "camera-folders"
        elif n_folders > typical:
            layout = "group-folders"
        else:
            amount = (
                f"{typical} images each" if min(counts) == typical else f"up to {typical} images"
            )
            raise DatasetError(
                f"ambiguous layout under {url}: {n_folders} folders with {amount}; "
                "pass layout='camera-folders' or 'group-folders'"
            )
    if layout == "camera-folders":
        return _camera_folders(folders, url, loc)
    return _group_folders(folders, url, loc)
