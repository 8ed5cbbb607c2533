"""The one exception type the command-line tool turns into a clean error message.

Every stage raises ``SymatoError`` (or a subclass) for bad input: a missing file, a
corrupt vocabulary, an invalid setting. The message must name the file, line or key so
a user can fix it without reading a traceback.
"""

from __future__ import annotations


class SymatoError(Exception):
    """A user-facing error: the message alone must say what is wrong and where."""
