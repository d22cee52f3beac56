"""The one exception the CLI turns into a single sentence and exit code 2."""


class BadInput(Exception):
    """Input the user can fix: a missing file, an unknown key, a run directory that already exists."""
