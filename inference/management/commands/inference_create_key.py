from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inference.models import Team
from inference.services.access import create_api_key


class Command(BaseCommand):
    help = "Create an API key for USERNAME. The key is printed once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--team", help="Slug of the team the key's runs are attributed to.")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, username, team=None, name="", **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        team_obj = None
        if team:
            try:
                team_obj = Team.objects.get(slug=team)
            except Team.DoesNotExist as exc:
                raise CommandError(f"No team with slug {team!r}.") from exc
        key, raw = create_api_key(user, name=name, team=team_obj)
        self.stderr.write(f"Created key {key.prefix} for {username}. Store it now: it is not shown again.")
        self.stdout.write(raw)
