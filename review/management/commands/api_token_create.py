"""Give a user a new API token and print it (replacing any old one): for scripts set up from a shell."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from review.api_tokens import api_token_create


class Command(BaseCommand):
    help = "Make (or replace) a user's API token and print the key; only its digest is stored."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is called {username!r}.")
        self.stdout.write(api_token_create(user=user))
