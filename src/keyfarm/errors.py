"""Exception types shared by every stage; the CLI turns them into one-line errors."""


class KeyfarmError(Exception):
    """Base class of keyfarm's expected failures (never shown as a traceback by the CLI)."""


class KeyfarmInputError(KeyfarmError):
    """Structural problem in the input tables: names the table, the column and an example row."""

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None,
                 row: object = None):
        super().__init__(message)
        self.table = table
        self.column = column
        self.row = row


class KeyfarmConfigError(KeyfarmError):
    """Invalid configuration file or option."""
