"""List, and with --delete remove, media files no row refers to (project/storage_orphans.py)."""
from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from project.storage_orphans import storage_orphans


class Command(BaseCommand):
    help = "List media files under projects/ that no row refers to; --delete removes them."

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="remove them (otherwise only list them)")
        parser.add_argument("--min-age-hours", type=float, default=24.0,
                            help="leave files younger than this (uploads write their file just before their row); "
                                 "default 24")

    def handle(self, *args, delete: bool, min_age_hours: float, **options):
        if min_age_hours < 0:
            raise CommandError("--min-age-hours cannot be negative.")
        count = size = 0
        for orphan in storage_orphans(min_age=timedelta(hours=min_age_hours)):
            if delete:
                default_storage.delete(orphan.name)
            count, size = count + 1, size + orphan.size
            self.stdout.write(f"{'deleted' if delete else 'orphan'} {orphan.name} ({orphan.size} bytes, "
                              f"{orphan.modified:%Y-%m-%d %H:%M})")
        verb = "deleted" if delete else "found; --delete removes them"
        self.stdout.write(f"{count} file{'s' if count != 1 else ''} ({size / 1e6:.1f} MB) that no row refers to, {verb}.")
