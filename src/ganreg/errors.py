"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (bad recipe, missing file,
corrupt data, wrong shapes). The CLI prints it as a short message with the fix
and exits with code 2, never with a traceback. Everything else is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; ``fix`` says how."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class DataError(UserError):
    """Bad or missing data: names the file and the item."""


class RecipeError(UserError):
    """One or more problems in a recipe, each with its JSON path."""

    def __init__(self, problems: list[tuple[str, str, str | None]], source: str = "recipe") -> None:
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        for path, msg, fix in problems:
            lines.append(f"  {path}: {msg}" + (f" (fix: {fix})" if fix else ""))
        super().__init__("\n".join(lines))


class ComponentError(UserError):
    """Unknown, ambiguous or clashing component names."""


class TrainingDiverged(UserError):
    """A loss became NaN or infinite."""
