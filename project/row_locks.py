"""Row locks that keep a writer and a concurrent delete from failing each other on a foreign key.

On PostgreSQL, Django's foreign keys are checked when a transaction commits. A delete cascades by
first reading the rows that point at what it deletes; rows that another transaction is still
inserting are invisible to it, and then one of the two commits fails on the foreign key. So:

- a writer that adds rows pointing at images or label classes holds those rows until it commits:
  images FOR UPDATE (`update_lock`; it updates them anyway), label classes and the model version
  whose predictions it writes FOR KEY SHARE (`key_share_lock`), which writers of the same project
  share without waiting for each other;
- a delete locks the rows it deletes FOR UPDATE before cascading (`update_lock`), so it waits
  for those writers and its cascade then sees their rows, and later writers wait for it and find the
  rows gone.

Every transaction takes images before label classes, so no two of them wait for each other in a circle.
The two deletes that cascade through a project's predictions, a project delete and a class delete,
both take the project row first, so they take turns.
SQLite needs none of this: its transactions here are IMMEDIATE and so take turns; both functions are
plain reads there.
"""
from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.transaction import TransactionManagementError


def key_share_lock(queryset: models.QuerySet) -> set[int]:
    """The ids of these rows, which no one can delete until this transaction ends."""
    if not connection.in_atomic_block:
        raise TransactionManagementError("key_share_lock holds rows until the transaction ends: call it in one.")
    ids = queryset.order_by("pk").values_list("pk", flat=True)
    if connection.vendor != "postgresql":
        return set(ids)
    try:
        sql, params = ids.query.sql_with_params()
    except EmptyResultSet:  # `pk__in=[]`: Django knows without asking
        return set()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE", params)
        return {row[0] for row in cursor.fetchall()}


def update_lock(queryset: models.QuerySet, *, no_key: bool = False) -> list[int]:
    """The ids of these rows, locked FOR UPDATE until this transaction ends, taken in id order as everyone takes them.

    `no_key`: FOR NO KEY UPDATE, which rows pointing at these (their foreign-key checks) do not wait for.
    """
    return list(queryset.select_for_update(no_key=no_key).order_by("pk").values_list("pk", flat=True))
