"""Insert many rows of numbers at once: PostgreSQL's binary COPY there, executemany elsewhere;
update many rows by id with one executemany.

Built for the inference writer (inference/execution.py), which stores about 1,600 prediction rows
per batch of 16 images from a thread that shares the GIL with the model's. Django's psycopg
backend binds parameters on the client, so executemany formatted every row in Python: 60 ms of CPU
per batch, most of a GPU's batch time. Binary COPY takes the columns as one buffer laid out by
numpy, with no Python work per row. SQLite's executemany binds in C and stays.
"""
from __future__ import annotations

import numpy as np
from django.db import connection, models

# Binary COPY: signature, flags (none), header extension length (0); then rows; then -1 as the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
# Column type -> its binary wire format (big-endian); a column of another type goes by executemany.
_WIRE_FORMATS = {"bigint": ">i8", "integer": ">i4", "smallint": ">i2", "double precision": ">f8", "real": ">f4"}


def rows_insert(model: type[models.Model], columns: dict[str, np.ndarray]) -> int:
    """INSERT one row per element of equally long arrays, each named by a field of `model`; returns the count.

    No NULLs and no defaults: every column of every row is given. Finite numbers only (a NaN in a
    float column would be stored as NaN).
    """
    arrays = [np.asarray(values) for values in columns.values()]
    count = len(arrays[0]) if arrays else 0
    if any(len(values) != count for values in arrays):
        raise ValueError("rows_insert needs columns of equal length.")
    if not count:
        return 0
    fields = [model._meta.get_field(name) for name in columns]
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    wire = [_WIRE_FORMATS.get(field.db_type(connection)) for field in fields]
    for field, values, form in zip(fields, arrays, wire):
        if form and not np.can_cast(values.dtype, form, casting="same_kind"):
            raise ValueError(f"{field.name} holds {values.dtype} values, which its {form[1:]} column would change.")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and all(wire):
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_copy_binary(arrays, wire))
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})",
                               list(zip(*(values.tolist() for values in arrays))))
    return count


def rows_update(model: type[models.Model], columns: tuple[str, ...], rows: list[tuple]) -> None:
    """UPDATE rows by id (the id last in each row) with one executemany.

    bulk_update builds model objects and compiles a CASE per column over every row: 7 of the 10
    seconds of ranking 4,500 images again (inference/rerank.py), and GIL time the inference
    writer's model thread needs; executemany runs the loop in the database driver.
    """
    if not rows:
        return
    names = [model._meta.get_field(name).column for name in columns]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {model._meta.db_table} SET {', '.join(f'{n} = %s' for n in names)} WHERE id = %s",
                           rows)


def _copy_binary(arrays: list[np.ndarray], wire: list[str]) -> bytes:
    """The rows in COPY's binary format: per row the field count, then per field its byte length and value."""
    layout = [("fields", ">i2")]
    for i, form in enumerate(wire):
        layout += [(f"length{i}", ">i4"), (f"value{i}", form)]
    rows = np.empty(len(arrays[0]), dtype=np.dtype(layout))  # packed: no padding between fields
    rows["fields"] = len(arrays)
    for i, (values, form) in enumerate(zip(arrays, wire)):
        rows[f"length{i}"] = np.dtype(form).itemsize
        rows[f"value{i}"] = values
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER
