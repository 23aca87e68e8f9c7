"""Silences one named third-party warning before CompressAI is first imported.

CompressAI scripts a helper with ``torch.jit`` at import; torch 2.14 deprecates that with a
FutureWarning on every command. It concerns CompressAI, not our users, so exactly that
message is filtered (no blanket category filter).
"""

import warnings

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
