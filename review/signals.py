"""What the review app tells apps above it, without importing them (webhooks/ listens)."""
from django.dispatch import Signal

# Members were named as @username in a comment, or in one send-back reason given to many images.
# kwargs: project_id, author (a user or None), text, user_ids (the newly named), image_ids.
members_mentioned = Signal()

# Images are about to be deleted, in the deleting transaction (their rows are locked). kwargs:
# images (a queryset of them). An app that keeps many rows per image deletes its rows first, in
# bulk: Django's cascade would load every one of them, and whatever points at them, first (a
# project's 800,000 predictions took most of its 40 s delete on PostgreSQL).
images_deleting = Signal()

# A label class was renamed, in the renaming transaction. kwargs: project_id, label_class, old_name, new_name.
# Models know their classes by name (inference's ModelVersion.class_names), so they follow it.
label_class_renamed = Signal()
