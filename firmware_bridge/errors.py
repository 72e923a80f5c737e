"""The one exception type for "the user gave us something we cannot use".

It lives in the lowest package (everything may import `firmware_bridge`), is raised with a message that
names the file/option/port and what is wrong, and is caught once, at the command-line boundary
(`runtime/cli.py`), which prints one line and exits with status 2. Anything else is our bug and keeps its
traceback.
"""

from __future__ import annotations

USER_ERROR_EXIT = 2


class UserError(Exception):
    """Bad input from the user (argument, file, port, device): the message says what and where."""
