"""What the review app tells apps above it, without importing them (webhooks/ listens)."""
from django.dispatch import Signal

# Members were named as @username in a comment, or in one send-back reason given to many images.
# kwargs: project_id, author (a user or None), text, user_ids (the newly named), image_ids.
members_mentioned = Signal()
