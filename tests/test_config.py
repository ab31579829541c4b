"""Settings from the environment: precedence, encrypted values and one-line refusals."""

import math

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from taskhub.config import ConfigError, Env, database, decrypt_values, encrypt, load_env, merged_environ, secret_key
from tests.helpers import clean_env, manage, python

KEY = Fernet.generate_key().decode()


@pytest.fixture
def files(tmp_path):
    """Write ``.env`` and ``.secrets`` in tmp_path; return the process-env entries that point at them."""

    def write(env_text: str = "", secrets_text: str = "") -> dict[str, str]:
        (tmp_path / ".env").write_text(env_text)
        (tmp_path / ".secrets").write_text(secrets_text)
        return {"TASKHUB_ENV_FILE": str(tmp_path / ".env"), "TASKHUB_SECRETS_FILE": str(tmp_path / ".secrets")}

    return write


def test_environment_wins_over_env_file_which_wins_over_secrets(files, tmp_path):
    paths = files("A=from-env-file\nB=from-env-file\n", "A=from-secrets\nB=from-secrets\nC=from-secrets\n")
    merged = merged_environ(tmp_path, {**paths, "A": "from-process"})
    assert (merged["A"], merged["B"], merged["C"]) == ("from-process", "from-env-file", "from-secrets")


def test_default_files_sit_beside_manage_py(tmp_path):
    (tmp_path / ".env").write_text("X=1\n")
    (tmp_path / ".secrets").write_text("Y=2\n")
    merged = merged_environ(tmp_path, {})
    assert (merged["X"], merged["Y"]) == ("1", "2")


def test_encrypted_value_is_decrypted_with_the_key(files, tmp_path):
    token = encrypt("s3cret-password", KEY)
    assert token.startswith("enc:") and "s3cret" not in token
    env = load_env(tmp_path, {**files("", f"REDIS_URL={token}\n"), "TASKHUB_SECRETS_KEY": KEY})
    assert env.str("REDIS_URL") == "s3cret-password"


@pytest.mark.parametrize(
    "key, token, named",
    [
        (Fernet.generate_key().decode(), encrypt("hunter2", KEY), "REDIS_URL cannot be decrypted"),
        (KEY, "enc:not-a-token", "REDIS_URL cannot be decrypted"),
        ("", encrypt("hunter2", KEY), "TASKHUB_SECRETS_KEY is not set (REDIS_URL is encrypted)"),
        ("short", encrypt("hunter2", KEY), "TASKHUB_SECRETS_KEY is not a valid Fernet key"),
    ],
)
def test_a_bad_key_or_token_names_the_setting_and_never_the_secret(key, token, named):
    with pytest.raises(ConfigError) as caught:
        decrypt_values({"REDIS_URL": token, "TASKHUB_SECRETS_KEY": key})
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert "hunter2" not in message and token[4:] not in message and (not key or key not in message)


def test_a_wrong_key_stops_start_up_with_one_line(files):
    env = clean_env(
        SECRET_KEY="k",
        TASKHUB_SECRETS_KEY=Fernet.generate_key().decode(),
        **files("", f"DATABASE_URL={encrypt('postgres://u:hunter2@h/db', KEY)}\n"),
    )
    result = manage("check", env=env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "taskhub: configuration error: DATABASE_URL cannot be decrypted: the token is corrupt "
        "or TASKHUB_SECRETS_KEY is not the key it was encrypted with"
    ]
    assert "hunter2" not in result.stderr + result.stdout


def test_missing_secret_key_with_debug_off_stops_start_up_with_one_line():
    result = manage("check", env=clean_env())
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("taskhub: configuration error: SECRET_KEY is not set")


def test_debug_is_off_unless_set_and_debug_needs_no_secret_key():
    assert manage("check", env=clean_env(DEBUG="true")).returncode == 0
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        secret_key(Env({}), debug=Env({}).bool("DEBUG", default=False))


def test_a_malformed_number_names_its_variable():
    result = manage("check", env=clean_env(SECRET_KEY="k", TASKHUB_LOG_MAX_BYTES="ten"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "taskhub: configuration error: TASKHUB_LOG_MAX_BYTES has a value that is not a valid int"
    ]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_setting_reads_any_number_python_writes_exactly(number):
    for text in (repr(number), f"{number:e}"):
        assert Env({"X": text}).float("X") == float(text)


@given(st.text(max_size=12))
def test_a_float_setting_refuses_what_python_does_not_read_as_a_finite_number(text):
    if text.startswith("$"):  # django-environ reads $NAME as another variable's value: not set here
        with pytest.raises(ConfigError, match="^X (starts with \\$, so it names another variable|refers to itself)"):
            Env({"X": text}).float("X")
        return
    try:
        expected = float(text)
    except ValueError:
        expected = None
    if expected is None or not math.isfinite(expected):
        with pytest.raises(ConfigError, match="^X has a value that is not a valid float$"):
            Env({"X": text}).float("X")
    else:
        assert Env({"X": text}).float("X") == expected


@pytest.mark.parametrize("environ", [{"X": "$X"}, {"X": "$Y", "Y": "$X"}, {"X": "$"}, {"X": "$NOT_SET"}])
def test_a_value_naming_another_variable_that_is_missing_or_itself_is_one_line(environ):
    with pytest.raises(ConfigError, match="^X (starts with \\$, so it names another variable|refers to itself)"):
        Env(environ).float("X")
    assert Env({"X": "$Y", "Y": "2.5"}).float("X") == 2.5  # the reference itself works


def test_a_float_setting_is_never_rewritten():
    """django-environ's own float keeps only digits, commas and dots: 1e100 read as 1100, 10s as 10."""
    assert Env({"X": "1e100"}).float("X") == 1e100
    for text in ("10s", "5 minutes", "0x10", "1,5"):
        with pytest.raises(ConfigError, match="not a valid float"):
            Env({"X": text}).float("X")


def test_encrypt_secret_command_round_trips_through_settings(tmp_path):
    encrypted = manage("encrypt_secret", env=clean_env(SECRET_KEY="k", TASKHUB_SECRETS_KEY=KEY), input="rosebud\n")
    assert encrypted.returncode == 0, encrypted.stderr
    token = encrypted.stdout.strip()
    assert token.startswith("enc:") and "rosebud" not in token
    (tmp_path / ".secrets").write_text(f"SECRET_KEY={token}\n")
    env = clean_env(TASKHUB_SECRETS_KEY=KEY, TASKHUB_SECRETS_FILE=str(tmp_path / ".secrets"))
    result = python("from django.conf import settings; print(settings.SECRET_KEY)", env=env)
    assert result.stdout.strip() == "rosebud", result.stderr


def test_encrypt_secret_without_a_key_is_one_readable_line():
    result = manage("encrypt_secret", env=clean_env(SECRET_KEY="k"), input="x\n")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["CommandError: TASKHUB_SECRETS_KEY is not set"]


def test_encrypt_secret_generates_a_usable_key():
    result = manage("encrypt_secret", "--generate-key", env=clean_env(SECRET_KEY="k"))
    Fernet(result.stdout.strip().encode())  # raises when it is not a key


def test_sqlite_is_the_embedded_default(tmp_path):
    config = database(Env({}), tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"] and config["OPTIONS"]["timeout"] > 0


def test_a_postgres_url_gives_persistent_health_checked_psycopg_connections(tmp_path):
    config = database(Env({"DATABASE_URL": "postgres://alice:pw@db.internal:6543/jobs"}), tmp_path)
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "django.db.backends.postgresql",
        "db.internal",
        6543,
        "jobs",
        "alice",
    )
    assert config["CONN_MAX_AGE"] > 0 and config["CONN_HEALTH_CHECKS"] is True
    assert config["OPTIONS"]["connect_timeout"] > 0


@pytest.mark.parametrize("url", ["mysql://u@h/db", "nonsense"])
def test_an_unsupported_database_url_is_refused(url, tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        database(Env({"DATABASE_URL": url}), tmp_path)


def test_settings_use_psycopg_3_for_a_postgres_url():
    env = clean_env(SECRET_KEY="k", DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    result = python(
        "from django.db import connection; import psycopg; "
        "print(connection.settings_dict['ENGINE'], connection.Database is psycopg)",
        env=env,
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "True"], result.stderr


def test_broker_defaults_to_redis_url():
    code = "from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    assert python(code, env=clean_env(SECRET_KEY="k", REDIS_URL="redis://r:1/2")).stdout.strip() == "redis://r:1/2"
    both = clean_env(SECRET_KEY="k", REDIS_URL="redis://r:1/2", CELERY_BROKER_URL="amqp://b//")
    assert python(code, env=both).stdout.strip() == "amqp://b//"
