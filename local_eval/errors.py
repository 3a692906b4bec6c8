"""Errors the user can fix while preparing data, dry-running or scoring."""


class EvalError(Exception):
    """Printed by the command line as one paragraph, without a traceback."""
