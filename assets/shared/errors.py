"""The one exception type for problems the user fixes (data or settings), not bugs.

Logic modules raise :class:`InputError` (or a subclass) with a message that says what was wrong, where
(setting, file, row) and what to do; every asset turns it into a Dagster ``Failure`` showing that message
instead of a traceback (``assets.publishing.user_errors``). Any other exception is a bug and keeps its
traceback. Framework-free.
"""


class InputError(ValueError):
    """Bad input data or settings; the message is written for the person who has to fix it."""
