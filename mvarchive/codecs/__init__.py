"""Learned multi-view codecs behind one interface and one registry.

Importing this package registers every codec: ``list_codecs()`` shows them,
``create_codec(name, preset)`` builds one, ``load_codec(checkpoint)`` restores trained weights.
"""

import warnings

# CompressAI scripts a helper with torch.jit at import; torch 2.14 deprecates that with a
# FutureWarning on every command. It concerns CompressAI, not our users.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from . import bisic, camsic, ecsic, elic, ldmic, mlicpp, single_view, vemic  # noqa: F401  (registration side effect of the codec modules)
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
    CodecRef,
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
    "CodecRef",
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
