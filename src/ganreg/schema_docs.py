"""Human-readable rows describing a pydantic params model (``ganreg show``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or repr(annotation)
    return text.replace("typing.", "")


def params_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str, str]]:
    """(name, type, default, constraints, description) for each field."""
    rows = []
    for name, field in model.model_fields.items():
        default = "required" if field.default is PydanticUndefined else repr(field.default)
        if field.default_factory is not None:
            default = repr(field.default_factory())
        constraints = ", ".join(
            f"{k} {getattr(m, k)}" for m in field.metadata for k in ("gt", "ge", "lt", "le", "min_length", "max_length") if getattr(m, k, None) is not None
        )
        rows.append((name, _type_name(field.annotation), default, constraints, field.description or ""))
    return rows
