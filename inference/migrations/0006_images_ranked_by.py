"""Images ranked before Image.ranked_by existed: the newest version with boxes on them ranked them
(an image that version found nothing on is attributed to an older one; its next prediction fixes it)."""
from django.db import migrations
from django.db.models import Max, OuterRef, Subquery


def ranked_by_fill(apps, schema_editor):
    Image = apps.get_model("review", "Image")
    Prediction = apps.get_model("inference", "Prediction")
    newest = (Prediction.objects.filter(image_id=OuterRef("pk")).order_by().values("image_id")
              .annotate(number=Max("model_version__number")).values("number"))
    Image.objects.filter(uncertainty__isnull=False, ranked_by__isnull=True).update(ranked_by=Subquery(newest))


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0005_drop_redundant_foreign_key_indexes"),
        ("review", "0018_review_threshold"),
    ]

    operations = [migrations.RunPython(ranked_by_fill, migrations.RunPython.noop)]
