"""The one exception type for mistakes a user can fix (a bad file, option or shape).

The ``deepsky`` command prints such an error as one line naming the bad value and exits with
status 2, without a traceback (``--debug`` shows it); any other exception is a bug in deepsky.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the file, option or value and what is wrong with it.

    A ``ValueError`` so that callers catching the library's historical ``ValueError`` still do.
    """
