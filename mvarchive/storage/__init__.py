"""Archives on Zarr through fsspec: location handling, layout, writer and reader."""

from .archive import (
    METRIC_COLUMNS,
    ArchiveError,
    ArchiveMeta,
    ArchiveReader,
    ArchiveWriter,
    CodecRecord,
    GroupRecord,
    StoredGroup,
)
from .location import Location

__all__ = [
    "METRIC_COLUMNS",
    "ArchiveError",
    "ArchiveMeta",
    "ArchiveReader",
    "ArchiveWriter",
    "CodecRecord",
    "GroupRecord",
    "Location",
    "StoredGroup",
]
