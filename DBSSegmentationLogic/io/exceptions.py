"""Errors the logic raises for bad input. Each carries one clear line for the user."""


class DBSInputError(ValueError):
    """Input that cannot be planned on: the message names the problem in one line."""


# Exit codes of every command (DESIGN §7): the GUI's process runner and batch callers read them.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 3
EXIT_CANCELLED = 130
