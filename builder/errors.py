"""Errors the user can fix while building or packaging a notebook."""


class BuildError(Exception):
    """Printed by the command line as one paragraph, without a traceback."""


# What the user's own code may raise while the builder imports or calls it: exit() too,
# which would otherwise end the command without a word.
USER_CODE_ERRORS = (Exception, SystemExit)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, however many lines the message has."""
    text = " ".join(str(exc).split())
    if isinstance(exc, SystemExit):
        return f"SystemExit (exit({exc.code!r}) was called)"
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
