"""Archives on Zarr through fsspec: location handling, layout, writer and reader."""

from .archive import (
    ARCHIVE_FORMAT,
    EMBEDDED_CHECKPOINT,
    METRIC_COLUMNS,
    ArchiveMeta,
    ArchiveReader,
    ArchiveWriter,
    CodecRecord,
    GroupRecord,
    RunRecord,
    StoredGroup,
    embedded_path,
    group_digest,
)
from .errors import ArchiveError
from .index import IndexRow
from .lease import ArchiveBusyError, Lease, LeaseConfig, LeaseInfo, current_holder
from .location import Location, absolute_url
from .options import StorageOptions

__all__ = [
    "ARCHIVE_FORMAT",
    "EMBEDDED_CHECKPOINT",
    "METRIC_COLUMNS",
    "ArchiveBusyError",
    "ArchiveError",
    "ArchiveMeta",
    "ArchiveReader",
    "ArchiveWriter",
    "CodecRecord",
    "GroupRecord",
    "IndexRow",
    "Lease",
    "LeaseConfig",
    "LeaseInfo",
    "Location",
    "RunRecord",
    "StorageOptions",
    "StoredGroup",
    "absolute_url",
    "current_holder",
    "embedded_path",
    "group_digest",
]
