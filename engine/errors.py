"""The base of every error whose message is meant for the person using the app."""


class PalimpsestError(Exception):
    """A failure explained in one line a user can act on; the UI and CLI show it as it is."""


class DraftError(PalimpsestError):
    """An operation on a draft that cannot be done as asked; the message says why."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an error's message (or its type), for embedding in our own message."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__
