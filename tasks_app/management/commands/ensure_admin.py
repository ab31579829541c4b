import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from taskhub.config import load_env


class Command(BaseCommand):
    help = (
        "Make sure an admin user exists: TASKHUB_ADMIN_USER (default 'admin') with "
        "TASKHUB_ADMIN_PASSWORD, or a generated password printed once."
    )

    def handle(self, *args, **options):
        env = load_env(settings.BASE_DIR)
        username = env.str("TASKHUB_ADMIN_USER", default="admin")
        password = env.str("TASKHUB_ADMIN_PASSWORD", default="")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            if password and not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"admin user {username!r}: password set from TASKHUB_ADMIN_PASSWORD")
            else:
                self.stdout.write(f"admin user {username!r} exists")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(f"admin user {username!r} created with the one-time password: {password}")
            self.stdout.write("  (shown once; change it in the admin, or set TASKHUB_ADMIN_PASSWORD)")
        else:
            self.stdout.write(f"admin user {username!r} created with the password from TASKHUB_ADMIN_PASSWORD")
