"""docker-compose.yml and the Dockerfile start real taskhub processes.

No Docker is needed: the files are read as data, and every command they run is
resolved against the project itself (manage.py commands, the Celery app and its CLI,
the gunicorn WSGI callable), with its options parsed by the program's own parser. So
a renamed command, a moved module or a mistyped option fails here, not in production.
"""

import json
import re
import shlex
from functools import cache
from importlib import import_module
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands, load_command_class
from gunicorn.config import Config as GunicornConfig

from taskhub import broker_settings
from taskhub.config import Env, database

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
RABBITMQ_FILE = ROOT / "docker-compose.rabbitmq.yml"  # the RabbitMQ variant, applied over COMPOSE_FILE
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("migrate", "web", "worker", "beat", "apscheduler")
LONG_RUNNING = ("web", "worker", "beat", "apscheduler")
SINGLETONS = ("beat", "apscheduler")  # a second copy would fire every job twice
REQUIRED_ENVIRONMENT = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")

# Importing the WSGI app builds WhiteNoise, which warns that collectstatic has not run here.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


# --- compose file ---------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict:
    return compose()["services"]


@cache
def rabbitmq_override() -> dict:
    return yaml.safe_load(RABBITMQ_FILE.read_text())


def with_rabbitmq() -> dict:
    """The services as ``docker compose -f docker-compose.yml -f docker-compose.rabbitmq.yml`` merges them:
    mappings (environment, depends_on) merge key by key, anything else the override replaces."""
    merged = {name: dict(service) for name, service in services().items()}
    for name, override in rabbitmq_override()["services"].items():
        service = merged.setdefault(name, {})
        for key, value in override.items():
            service[key] = {**service.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults; required variables get a dummy."""

    def value(match):
        operator, default = match.group(2) or "", match.group(3) or ""
        if "-" in operator:
            return default
        return "placeholder" if "?" in operator else ""

    text = re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", value, text)
    return text.replace("$$", "$")


def invocations(command) -> list[list[str]]:
    """The argument vectors a ``command:`` runs; ``sh -c "a && b"`` runs two."""
    assert isinstance(command, list), f"use the list (exec) form for command:, not {command!r}"
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(interpolate(part)) for part in command[2].split("&&")]
    return [[interpolate(arg) for arg in command]]


def built_image() -> str:
    builders = [s for s in services().values() if "build" in s]
    assert len(builders) == 1, "exactly one service builds the app image"
    return builders[0]["image"]


def build_context(service: dict) -> tuple[str, str]:
    build = service["build"]
    if isinstance(build, str):
        return build, "Dockerfile"
    return build.get("context", "."), build.get("dockerfile", "Dockerfile")


def named_volumes(service: dict) -> list[str]:
    """The named volumes a service mounts (short or long syntax)."""
    names = []
    for volume in service.get("volumes", []):
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source and not source.startswith(("/", ".", "~")):
            names.append(source)
    return names


def seconds(duration: str) -> float:
    """A compose duration such as ``60s``, ``1m30s`` or ``1m`` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Dockerfile -----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` for every instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def last_instruction(keyword: str) -> str:
    found = [arguments for kw, arguments in dockerfile_instructions() if kw == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]  # Docker uses the last one


def exec_form(arguments: str) -> list[str]:
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"use the exec (JSON array) form, not {arguments!r}")
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arguments
    return argv


def healthcheck_command() -> list[str]:
    options, found, command = last_instruction("HEALTHCHECK").partition("CMD ")
    assert found, "the HEALTHCHECK runs a command (not NONE)"
    return exec_form(command.strip())


# --- entry points ---------------------------------------------------------------------


def check_entry_point(argv: list[str]) -> None:
    """Fail unless ``argv`` starts a real program of this project with valid options."""
    if argv[:2] in (["python", "manage.py"], ["python3", "manage.py"]):
        check_manage_command(argv[2:])
    elif argv[:1] == ["celery"]:
        check_celery(argv[1:])
    elif argv[:1] == ["gunicorn"]:
        check_gunicorn(argv[1:])
    else:
        pytest.fail(f"not a known taskhub entry point: {argv}")


def check_manage_command(args: list[str]) -> None:
    assert args, "manage.py needs a command name"
    name, *options = args
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    command = load_command_class(commands[name], name)
    command.create_parser("manage.py", name).parse_args(options)  # CommandError if invalid


CELERY_OPTIONS_WITH_VALUE = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}


def split_celery_args(args: list[str]) -> tuple[str | None, list[str]]:
    """``-A APP [global options] SUB [sub options]`` as ``(APP, [SUB, ...])``."""
    app, rest = None, list(args)
    while rest and rest[0].startswith("-"):
        option, _, value = rest.pop(0).partition("=")
        if option in CELERY_OPTIONS_WITH_VALUE and not value:
            value = rest.pop(0)
        if option in ("-A", "--app"):
            app = value
    return app, rest


def check_celery(args: list[str]) -> None:
    app_name, rest = split_celery_args(args)
    assert app_name, "celery needs -A APP"
    app = find_app(app_name)  # how `celery -A` resolves it
    assert isinstance(app, Celery), f"celery -A {app_name} is not a Celery app"
    assert rest and rest[0] in celery_cli.commands, f"celery has no command {rest[:1]}"
    sub, *options = rest
    context = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    celery_cli.commands[sub].make_context(sub, options, obj=context)  # click error if invalid


def gunicorn_options(args: list[str]):
    try:
        return GunicornConfig().parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"gunicorn rejects the options {args}")


def check_gunicorn(args: list[str]) -> None:
    options = gunicorn_options(args)
    assert len(options.args) == 1, f"gunicorn needs exactly one MODULE:ATTR, got {options.args}"
    module, _, attribute = options.args[0].partition(":")
    application = getattr(import_module(module), attribute or "application", None)
    assert callable(application), f"{options.args[0]} is not a WSGI callable"


# --- tests: compose -------------------------------------------------------------------


def test_compose_file_parses():
    assert isinstance(compose(), dict)
    assert isinstance(services(), dict)


def test_compose_has_every_service():
    assert {"postgres", "redis", *APP_SERVICES} <= set(services())


@pytest.mark.parametrize("name", SINGLETONS)
def test_scheduler_runs_exactly_one_replica(name):
    service = services()[name]
    deploy = service.get("deploy", {})
    assert deploy.get("replicas", 1) == 1
    assert deploy.get("mode", "replicated") != "global"
    assert service.get("scale", 1) == 1


def test_postgres_keeps_its_data_in_a_named_volume():
    volumes = named_volumes(services()["postgres"])
    assert volumes, "postgres mounts a named volume"
    assert set(volumes) <= set(compose().get("volumes") or {}), "the volume is declared under volumes:"


@pytest.mark.parametrize("name, probe", [("postgres", "pg_isready"), ("redis", "redis-cli")])
def test_backing_service_has_a_healthcheck(name, probe):
    healthcheck = services()[name].get("healthcheck", {})
    assert not healthcheck.get("disable"), f"{name}'s healthcheck is disabled"
    assert probe in " ".join(healthcheck.get("test", [])), f"{name}'s healthcheck runs {probe}"


def test_one_service_builds_the_image_from_the_dockerfile():
    assert DOCKERFILE.is_file()
    [builder] = [s for s in services().values() if "build" in s]
    context, dockerfile = build_context(builder)
    assert context == "."
    assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
    assert builder.get("image"), "the built image has a name the other services can use"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_runs_the_built_image(name):
    assert services()[name].get("image") == built_image()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_command_is_a_real_entry_point(name):
    for argv in invocations(services()[name]["command"]):
        check_entry_point(argv)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_gets_its_configuration(name):
    environment = services()[name].get("environment", {})
    assert isinstance(environment, dict), "environment: as a mapping"
    assert set(REQUIRED_ENVIRONMENT) <= set(environment)
    config = database(Env({"DATABASE_URL": interpolate(environment["DATABASE_URL"])}), ROOT)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["HOST"] in services(), "DATABASE_URL points at a compose service"


def test_migrate_runs_migrations_once():
    migrate = services()["migrate"]
    first, *_ = invocations(migrate["command"])
    assert first[1:3] == ["manage.py", "migrate"]
    assert migrate.get("restart", "no") == "no", 'a one-shot service: restart: "no" (quoted)'


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_app_service_starts_after_migrate_and_healthy_backends(name):
    depends_on = services()[name].get("depends_on", {})
    assert isinstance(depends_on, dict), "depends_on: with conditions"
    assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully"
    assert depends_on.get("postgres", {}).get("condition") == "service_healthy"
    assert depends_on.get("redis", {}).get("condition") == "service_healthy"
    assert services()[name].get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", ["worker", "apscheduler"])
def test_in_flight_runs_get_time_to_finish_on_stop(name):
    assert seconds(services()[name].get("stop_grace_period", "10s")) >= 60


def test_web_listens_on_the_published_port():
    web = services()["web"]
    [argv] = invocations(web["command"])
    assert gunicorn_options(argv[1:]).bind == ["0.0.0.0:8000"]
    assert any(str(port).endswith(":8000") for port in web.get("ports", []))


# --- tests: Dockerfile ----------------------------------------------------------------


def test_dockerfile_cmd_is_a_real_entry_point():
    argv = exec_form(last_instruction("CMD"))
    check_entry_point(argv)
    assert gunicorn_options(argv[1:]).bind == ["0.0.0.0:8000"]


def test_dockerfile_healthcheck_runs_the_healthcheck_command():
    argv = healthcheck_command()
    check_entry_point(argv)
    assert argv[2] == "healthcheck"


def test_dockerfile_runs_as_a_non_root_user():
    assert last_instruction("USER") not in ("root", "0")


# --- tests: the RabbitMQ variant ------------------------------------------------------


def test_the_rabbitmq_variant_overrides_only_services_of_the_base_file_and_adds_rabbitmq():
    override = rabbitmq_override()["services"]
    assert set(override) - {"rabbitmq"} <= set(services()), "a service name the base file does not have"
    assert set(APP_SERVICES) <= set(override), "every app service is switched to RabbitMQ"


def test_rabbitmq_is_healthchecked_and_keeps_its_queues_in_a_named_volume_under_a_fixed_node_name():
    rabbitmq = with_rabbitmq()["rabbitmq"]
    healthcheck = rabbitmq.get("healthcheck", {})
    assert "rabbitmq-diagnostics" in " ".join(healthcheck.get("test", [])) and not healthcheck.get("disable")
    assert named_volumes(rabbitmq) and set(named_volumes(rabbitmq)) <= set(rabbitmq_override().get("volumes") or {})
    assert rabbitmq.get("hostname"), "RabbitMQ stores its data under its node name: a random one loses it"
    assert rabbitmq.get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_of_the_rabbitmq_variant_uses_it_with_quorum_queues(name):
    service, rabbitmq = with_rabbitmq()[name], with_rabbitmq()["rabbitmq"]
    environment = {key: interpolate(str(value)) for key, value in service["environment"].items()}
    url = environment["CELERY_BROKER_URL"]
    assert url.startswith("amqp://") and urlsplit(url).hostname == "rabbitmq"
    # the user, password and vhost RabbitMQ creates at its first start are the ones in the URL
    created = {key: interpolate(str(value)) for key, value in rabbitmq["environment"].items()}
    parts = urlsplit(url)
    assert (parts.username, parts.password, parts.path.lstrip("/")) == (
        created["RABBITMQ_DEFAULT_USER"],
        created["RABBITMQ_DEFAULT_PASS"],
        created["RABBITMQ_DEFAULT_VHOST"],
    )
    settings = broker_settings.celery(Env(environment), url)
    assert settings["CELERY_TASK_DEFAULT_QUEUE_TYPE"] == "quorum"
    assert settings["CELERY_TASKHUB_DELIVERY_LIMIT"] >= 1
    assert "DATABASE_URL" in environment, "the base file's environment is kept (merged, not replaced)"
    if name in LONG_RUNNING:
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
