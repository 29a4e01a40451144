"""Create or reset the local superuser `admin` with a new random password, and print it."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create or reset a local superuser with a fresh random password and print a login "
        "line. Only with DEBUG on, unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Default: admin.")
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/admin/",
            help="Where to log in, for the printed line.",
        )
        parser.add_argument("--force", action="store_true", help="Run even though DEBUG is off.")

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "Refusing to reset a superuser's password with DEBUG off; pass --force if you "
                "mean it."
            )
        username = options["username"]
        password = secrets.token_urlsafe(12)
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        created = user is None
        if created:
            user = User(**{User.USERNAME_FIELD: username})
        user.is_active = user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset"
        self.stderr.write(f"{verb} the local superuser {username!r}.")
        self.stdout.write(f"Log in at {options['url']} as {username} with password {password}")
