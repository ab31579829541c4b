"""The alert settings from the environment: e-mail, recipients and the webhook, refused in one line."""

import pytest

from taskhub import alert_settings
from taskhub.config import ConfigError, Env
from tests.helpers import clean_env, manage


def test_email_url_unset_is_the_console_backend_and_smtp_urls_are_read():
    for unset in ({}, {"EMAIL_URL": ""}):
        assert alert_settings.email(Env(unset))["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    config = alert_settings.email(Env({"EMAIL_URL": "smtp+tls://alerts:pw@mail.example.com:587", "EMAIL_TIMEOUT": "4"}))
    assert (config["EMAIL_HOST"], config["EMAIL_PORT"], config["EMAIL_USE_TLS"]) == ("mail.example.com", 587, True)
    assert (config["EMAIL_HOST_USER"], config["EMAIL_TIMEOUT"]) == ("alerts", 4)


def test_admins_and_alert_emails_are_comma_separated_addresses():
    env = Env({"ADMINS": "a@example.com, b@example.com", "TASKHUB_ALERT_EMAILS": "c@example.com"})
    assert alert_settings.admins(env) == [("a@example.com", "a@example.com"), ("b@example.com", "b@example.com")]
    assert alert_settings.addresses(env, "TASKHUB_ALERT_EMAILS") == ["c@example.com"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ADMINS": "ops@example.com, oops"}, "ADMINS holds 'oops', which is not an e-mail address"),
        ({"TASKHUB_ALERT_WEBHOOK_URL": "hooks.example.com/x"}, "TASKHUB_ALERT_WEBHOOK_URL must be an http://"),
        ({"TASKHUB_ALERT_WEBHOOK_URL": "ftp://hooks.example.com/x"}, "TASKHUB_ALERT_WEBHOOK_URL must be an http://"),
        ({"EMAIL_URL": "carrier-pigeon://coop"}, "EMAIL_URL is not a valid e-mail URL"),
    ],
)
def test_a_bad_alert_setting_stops_start_up_with_one_line(variables, message):
    result = manage("check", env=clean_env(SECRET_KEY="k", **variables))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"taskhub: configuration error: {message}")


def test_the_webhook_url_is_kept_as_given():
    url = "https://hooks.example.com/services/T0/B0/xyz?channel=ops"
    assert alert_settings.webhook_url(Env({"TASKHUB_ALERT_WEBHOOK_URL": url})) == url
    with pytest.raises(ConfigError):
        alert_settings.webhook_url(Env({"TASKHUB_ALERT_WEBHOOK_URL": "https://"}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKHUB_ALERT_TIMEOUT_SECONDS", "0"),  # every send would fail: "Non-blocking socket (timeout=0)"
        ("TASKHUB_ALERT_TIMEOUT_SECONDS", "-1"),  # every send would fail: "Timeout value out of range"
        ("TASKHUB_ALERT_POLL_SECONDS", "1e100"),  # the courier's wait would overflow and end its thread
        ("TASKHUB_ALERT_POLL_SECONDS", "-5"),
        ("TASKHUB_ALERT_OVERDUE_EVERY_SECONDS", "0"),
        ("TASKHUB_ALERT_MAX_ATTEMPTS", "0"),  # no attempt at all
        ("TASKHUB_ALERT_MAX_ATTEMPTS", "99999999999999999999"),
        ("TASKHUB_ALERT_DIGEST_FROM", "-3"),
        ("EMAIL_TIMEOUT", "-1"),
    ],
)
def test_an_alert_number_out_of_its_range_is_refused_naming_the_variable(name, value):
    env = Env({name: value})
    with pytest.raises(ConfigError, match=f"^{name} must be .* \\(it is "):
        alert_settings.numbers(env) if name.startswith("TASKHUB_") else alert_settings.email(env)


def test_alert_numbers_default_and_zero_turns_off_delivery_and_digests():
    assert alert_settings.numbers(Env({})) == {
        "ALERT_POLL_SECONDS": 5.0,
        "ALERT_OVERDUE_EVERY_SECONDS": 30.0,
        "ALERT_TIMEOUT_SECONDS": 10.0,
        "ALERT_MAX_ATTEMPTS": 6,
        "ALERT_DIGEST_FROM": 3,
    }
    off = alert_settings.numbers(Env({"TASKHUB_ALERT_POLL_SECONDS": "0", "TASKHUB_ALERT_DIGEST_FROM": "0"}))
    assert (off["ALERT_POLL_SECONDS"], off["ALERT_DIGEST_FROM"]) == (0, 0)


def test_a_timeout_of_zero_stops_start_up_with_one_line():
    result = manage("check", env=clean_env(SECRET_KEY="k", TASKHUB_ALERT_TIMEOUT_SECONDS="0"))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line == "taskhub: configuration error: TASKHUB_ALERT_TIMEOUT_SECONDS must be 0.1 to 600 (it is 0.0)"


@pytest.mark.parametrize("url", ["taskhub.example.com", "javascript:alert(1)", "https://"])
def test_the_public_url_is_an_http_url_with_a_host(url):
    with pytest.raises(ConfigError, match="^TASKHUB_PUBLIC_URL must be an http:// or https:// URL"):
        alert_settings.http_url(Env({"TASKHUB_PUBLIC_URL": url}), "TASKHUB_PUBLIC_URL")
