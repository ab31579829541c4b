import sys

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from taskhub.config import KEY_VARIABLE, ConfigError, encrypt, load_env


class Command(BaseCommand):
    help = (
        f"Print a value as enc:<token> for .secrets or the environment, encrypted with {KEY_VARIABLE}. "
        "The value is read from standard input so it stays out of shell history: all of it "
        "(a PEM key keeps every line), or one line typed at the prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generate-key", action="store_true", help=f"print a new key for {KEY_VARIABLE} and exit")
        parser.add_argument("--key", help=f"the key to use (default: {KEY_VARIABLE} from the environment)")

    def handle(self, *args, generate_key=False, key=None, **options):
        if generate_key:
            self.stdout.write(Fernet.generate_key().decode())
            return
        key = key or load_env(settings.BASE_DIR).str(KEY_VARIABLE, default="")
        value = self.read_value()
        if not value:
            raise CommandError("nothing to encrypt: give the value on standard input")
        try:
            self.stdout.write(encrypt(value, key))
        except ConfigError as exc:
            raise CommandError(str(exc)) from None

    def read_value(self) -> str:
        """One typed line at a terminal; else all of standard input (a PEM key has many lines)."""
        if sys.stdin.isatty():
            self.stderr.write("value to encrypt (end with Enter): ", ending="")
            return sys.stdin.readline().rstrip("\r\n")
        value = sys.stdin.read()
        return value.removesuffix("\n").removesuffix("\r")  # the line end a pipe or a file adds
