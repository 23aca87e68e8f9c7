"""Learned multi-view codecs behind one interface and one registry.

Importing this package registers every codec: ``list_codecs()`` shows them,
``create_codec(name, preset)`` builds one, ``load_codec(checkpoint)`` restores trained weights.
"""

# First: _compressai_import imports CompressAI without its point-cloud stack (after
# _compressai_warnings silences its import-time FutureWarning) before any codec module imports it;
# the codec modules register themselves on import.
from . import (  # noqa: F401
    _compressai_import,
    _compressai_warnings,
    bisic,
    camsic,
    ecsic,
    elic,
    ldmic,
    mlicpp,
    single_view,
    vemic,
)
from .base import (
    AnalysisPlacement,
    CodecIdentity,
    CompressedGroup,
    DecodedGroup,
    MultiViewCodec,
    ViewCountError,
    ViewRange,
)
from .bitstream import BitstreamError
from .checkpoint import (
    CheckpointError,
    codec_from_checkpoint_bytes,
    load_codec,
    read_checkpoint_bytes,
    save_checkpoint,
    weights_digest,
)
from .registry import CodecSpec, check_view_count, codecs_accepting, create_codec, get_spec, list_codecs

__all__ = [
    "AnalysisPlacement",
    "BitstreamError",
    "CheckpointError",
    "CodecIdentity",
    "CodecSpec",
    "CompressedGroup",
    "DecodedGroup",
    "MultiViewCodec",
    "ViewCountError",
    "ViewRange",
    "check_view_count",
    "codecs_accepting",
    "create_codec",
    "get_spec",
    "list_codecs",
    "load_codec",
    "codec_from_checkpoint_bytes",
    "read_checkpoint_bytes",
    "save_checkpoint",
    "weights_digest",
]
