"""URL converters. `<id:...>` is a database id: digits that fit a 64-bit integer, so a longer number is
a 404 from the URL resolver rather than an overflow inside the database driver (a 500)."""
from django.urls import register_converter
from django.urls.converters import IntConverter

# The largest id a database column holds (64-bit): a larger one, asked of the database, overflows its driver.
MAX_ID = 2**63 - 1


class IdConverter(IntConverter):
    regex = "[0-9]{1,18}"


# Registered when any URL module imports this one (each does), whichever is loaded first.
register_converter(IdConverter, "id")
