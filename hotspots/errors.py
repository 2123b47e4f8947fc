"""The one exception type that reaches the user as a message, not a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: config, file, row or column.

    The CLI prints ``str(error)`` as one paragraph and exits 1.
    """

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, hint: str | None = None):
        self.message, self.file, self.row, self.column, self.hint = message, file, row, column, hint
        where = []
        if file:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column '{column}'")
        text = (", ".join(where) + ": " if where else "") + message
        if hint:
            text += f" {hint}"
        super().__init__(text)
