"""Archives on Zarr through fsspec: location handling, layout, writer and reader."""

from .archive import (
    EMBEDDED_CHECKPOINT,
    METRIC_COLUMNS,
    ArchiveError,
    ArchiveMeta,
    ArchiveReader,
    ArchiveWriter,
    CodecRecord,
    GroupRecord,
    StoredGroup,
)
from .location import Location, absolute_url
from .options import StorageOptions

__all__ = [
    "EMBEDDED_CHECKPOINT",
    "StorageOptions",
    "absolute_url",
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
