"""One exception type for problems a user can fix; the CLI prints its message as one line."""


class FacelibError(Exception):
    """A user-facing error: the message names the problem and how to fix it."""
