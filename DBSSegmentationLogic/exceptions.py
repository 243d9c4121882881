"""Errors the logic raises for bad input. Each carries one clear line for the user."""


class DBSInputError(ValueError):
    """Input that cannot be planned on: the message names the problem in one line."""
