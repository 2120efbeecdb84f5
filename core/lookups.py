"""Finding the row a reference names, where a reference may be an id or a name."""

from __future__ import annotations

import uuid
from typing import TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def by_id_or_name(rows: models.QuerySet[M], ref: object) -> M | None:
    """The row of `rows` that `ref` names: by its id when `ref` reads as one, else by its name.
    Callers scope `rows` to an organization first; names are unique there."""
    try:
        return rows.filter(pk=uuid.UUID(str(ref))).first()
    except ValueError:
        return rows.filter(name=ref).first()
