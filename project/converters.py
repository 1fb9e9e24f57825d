"""Database ids in URLs, forms and query strings. `<id:...>` is a database id: digits that fit a 64-bit
integer, so a longer number is a 404 from the URL resolver rather than an overflow inside the
database driver (a 500); `as_id` reads one from a form or a query string the same way."""
import re

from django.urls import register_converter
from django.urls.converters import IntConverter

# The largest id a database column holds (64-bit): a larger one, asked of the database, overflows its driver.
MAX_ID = 2**63 - 1


class IdConverter(IntConverter):
    regex = "[0-9]{1,18}"


def as_id(value) -> int | None:
    """`value` (a string from a form or a query string) as a database id, or None when it is not one:
    ASCII digits only, 1 to MAX_ID. A larger number, asked of the database, overflows its driver (a 500)."""
    text = str(value or "")
    if re.fullmatch("[0-9]{1,19}", text) and 1 <= (number := int(text)) <= MAX_ID:
        return number
    return None


# Registered when any URL module imports this one (each does), whichever is loaded first.
register_converter(IdConverter, "id")
