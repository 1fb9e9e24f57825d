"""Give the images added before looks were kept theirs (review/look_alikes.py), reading their files."""
from django.core.management.base import BaseCommand

from review.image_files import decode_rgb
from review.look_alikes import look_cells
from review.models import Image, ImageLook


class Command(BaseCommand):
    help = ("Work out the look of every image that has none (added before looks were kept), so that the next "
            "image passes over their look-alikes too. Reads each such image's file once; safe to run again.")

    def handle(self, *args, **options):
        done = unreadable = 0
        while ids := list(Image.objects.filter(look__isnull=True).order_by("pk")
                          .values_list("pk", flat=True)[:500]):
            rows = []
            for image in Image.objects.filter(pk__in=ids).only("pk", "file"):
                try:
                    with image.file.open("rb") as file:
                        rows.append(ImageLook(image=image, cells=look_cells(decode_rgb(file.read()))))
                except (OSError, ValueError) as exc:  # a missing or broken file: an empty look, alike to nothing
                    self.stderr.write(f"image {image.pk}: {exc}")
                    rows.append(ImageLook(image=image, cells=b""))
                    unreadable += 1
            ImageLook.objects.bulk_create(rows, ignore_conflicts=True)  # an upload meanwhile made its own
            done += len(rows)
            self.stdout.write(f"{done} images done", ending="\r")
        self.stdout.write(f"{done} image{'s' if done != 1 else ''} given a look"
                          + (f", {unreadable} of them unreadable (left without one)." if unreadable else "."))
