"""The one exception type for mistakes a user can fix (bad file, unknown task, no network)."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits with code 2."""
