"""API clients (a key id and an encrypted secret) and the nonces they have used.

The secret is stored encrypted, not hashed: verifying an HMAC means computing it again,
which needs the secret itself, so a one-way hash would leave nothing to verify with. It is
encrypted with Fernet under a key derived (HKDF-SHA256) from ``SECRET_KEY``; a key in
``SECRET_KEY_FALLBACKS`` still decrypts, so rotating ``SECRET_KEY`` the Django way keeps
clients working until their secrets are rotated. The plaintext leaves the server once:
when it is created or rotated (``set_secret`` returns it; nothing stores it).
"""

import base64
import datetime as dt
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from tasks_app.exceptions import SecretUnreadable

# A timestamp may lead the server's clock by the signing window (``signing.WINDOW_SECONDS``,
# 300 s) and a replay may lag it by the window: a nonce can be replayed for up to twice the
# window after it was first seen, so it is kept that long (a test holds the two together).
NONCE_KEPT = dt.timedelta(seconds=2 * 300)


def new_key_id() -> str:
    return f"thk_{secrets.token_hex(12)}"


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(_derive(key)) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def _derive(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"taskhub api client secret")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


class ApiClientQuerySet(models.QuerySet):
    def create_client(self, **fields) -> tuple["ApiClient", str]:
        """A saved client and its secret in plaintext, to hand over once."""
        jobs = fields.pop("allowed_jobs", ())
        client = self.model(**fields)
        secret = client.set_secret()
        client.save()
        client.allowed_jobs.set(jobs)
        return client, secret


class ApiClient(models.Model):
    name = models.CharField(max_length=100, unique=True)
    key_id = models.CharField(
        max_length=40, unique=True, default=new_key_id, editable=False, help_text="Public: sent as X-Taskhub-Key."
    )
    secret_encrypted = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    # An explicit choice: reading "all" from an empty list widened a client whose jobs were all deleted.
    all_jobs = models.BooleanField(
        "all jobs", default=False, help_text="May use every job, including jobs added later."
    )
    may_run_paused = models.BooleanField(
        "may run paused jobs",
        default=False,
        db_default=False,
        help_text="May trigger a job that is paused (its schedule stays paused). Off: such a trigger gets 409.",
    )
    allowed_jobs = models.ManyToManyField(
        "tasks_app.Job",
        blank=True,
        related_name="api_clients",
        help_text="The jobs this client may trigger and read runs of, unless it has all jobs. None: no job.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiClientQuerySet.as_manager()

    class Meta:
        app_label = "tasks_app"
        ordering = ["name"]
        verbose_name = "API client"
        constraints = [models.CheckConstraint(condition=~Q(secret_encrypted=""), name="apiclient_has_secret")]

    def __str__(self):
        return self.name

    @property
    def requester(self) -> str:
        """How a run this client asked for names it: the key id tells two clients of one name apart."""
        return f"API client {self.name} ({self.key_id})"

    def set_secret(self) -> str:
        """Give the client a new secret (not saved); returns it in plaintext, the only time it is seen."""
        secret = secrets.token_hex(32)
        self.secret_encrypted = _fernet().encrypt(secret.encode()).decode()
        return secret

    def rotate_secret(self) -> str:
        """A new secret, saved at once: the old one stops working now."""
        secret = self.set_secret()
        self.save(update_fields=["secret_encrypted"])
        return secret

    @property
    def secret(self) -> str:
        try:
            secret = _fernet().decrypt(self.secret_encrypted.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"the secret of API client '{self.name}' cannot be decrypted with SECRET_KEY "
                f"or SECRET_KEY_FALLBACKS; rotate it"
            ) from None
        if not secret:  # anyone can compute an HMAC keyed with nothing
            raise SecretUnreadable(f"the secret of API client '{self.name}' is empty; rotate it")
        return secret

    def jobs(self) -> models.QuerySet:
        """The jobs this client may trigger and read runs of, decided by the rows when the query runs.

        Its own row is read again in the same query, so a client deleted, disabled or emptied since it
        was loaded reaches nothing; so does an unsaved one.
        """
        Job = self._meta.get_field("allowed_jobs").related_model
        me = type(self).objects.filter(pk=self.pk, enabled=True)
        return Job.objects.filter(Exists(me.filter(all_jobs=True)) | Exists(me.filter(allowed_jobs=OuterRef("pk"))))

    def mark_used(self) -> None:
        type(self).objects.filter(pk=self.pk).update(last_used_at=timezone.now())


class ApiNonceQuerySet(models.QuerySet):
    def use(self, client: ApiClient, nonce: str) -> bool:
        """Record ``nonce`` for ``client``; False when it was already used (a replay)."""
        now = timezone.now()
        self.filter(seen_at__lt=now - NONCE_KEPT).delete()  # opportunistic purge; one indexed DELETE
        try:
            with transaction.atomic():
                self.create(client=client, nonce=nonce, seen_at=now)
        except IntegrityError:
            return False
        return True


class ApiNonce(models.Model):
    """A nonce an API client has used; the unique constraint turns a replay into an IntegrityError."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="nonces")
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ApiNonceQuerySet.as_manager()

    class Meta:
        app_label = "tasks_app"
        constraints = [models.UniqueConstraint(fields=["client", "nonce"], name="apinonce_once_per_client")]

    def __str__(self):
        return f"{self.client_id}:{self.nonce}"
