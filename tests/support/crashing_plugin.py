"""A converter plug-in whose import kills the process (a native library gone wrong): the
capability check must survive it. Imported only by name, through the agent's settings."""

import ctypes

ctypes.string_at(0)  # segfaults at import


class Never:
    pass
