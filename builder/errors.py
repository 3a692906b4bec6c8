"""Errors the user can fix while building or packaging a notebook."""


class BuildError(Exception):
    """Printed by the command line as one paragraph, without a traceback."""
