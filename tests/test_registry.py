"""The handler registry: registration rules, class handlers, strict kwargs and module loading.

Pure Python, no database: every test uses its own ``Registry()``.
"""

import functools
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import anyio
import pytest
from pydantic import Field

import tasks_app.handlers.registry as registry_module
from tasks_app import RunContext
from tasks_app.handlers.registry import (
    BaseHandler,
    HandlerError,
    KwargsError,
    Param,
    Registry,
    UnknownHandler,
    handler,
    registry,
)

MAIN = Path(__file__).resolve().parents[1]
ASYNC_ONLY = "must be an async def function (got a plain def); wrap blocking code with anyio.to_thread.run_sync"


@pytest.fixture
def reg():
    return Registry()


def run(func, **kwargs):
    return anyio.run(functools.partial(func, **kwargs))


def errors_of(spec, kwargs) -> dict:
    with pytest.raises(KwargsError) as caught:
        spec.validate_kwargs(kwargs)
    return caught.value.errors


# --- registering ---------------------------------------------------------------------------------


def test_handler_is_the_process_wide_registry_decorator():
    assert handler is registry.handler and handler.__self__ is registry


def test_bare_decorator_registers_with_defaults_and_returns_the_function(reg):
    async def number_sum(x: int, y: int) -> int:
        """Add two numbers.

        Longer text that is not part of the description.
        """
        return x + y

    assert reg.handler(number_sum) is number_sum
    spec = reg.get("number_sum")
    assert (spec.name, spec.func, spec.timeout, spec.retries) == ("number_sum", number_sum, None, 0)
    assert (spec.retry_backoff, spec.description, spec.aliases) == (1.0, "Add two numbers.", ())
    assert (spec.takes_context, spec.module) == (False, __name__)
    assert run(spec.func, x=2, y=3) == 5


def test_decorator_with_options(reg):
    @reg.handler(name="reports.daily-send", timeout=5, retries=3, retry_backoff=2.5, description="Sends", aliases=["a"])
    async def send(): ...

    spec = reg.get("reports.daily-send")
    assert (spec.timeout, spec.retries, spec.retry_backoff) == (5, 3, 2.5)
    assert (spec.description, spec.aliases) == ("Sends", ("a",))
    assert spec.func is send and reg.names() == ["reports.daily-send"]


def test_empty_parentheses_and_no_docstring(reg):
    @reg.handler()
    async def quiet(): ...

    assert reg.get("quiet").description == ""


def test_duplicate_name_names_both_functions(reg):
    @reg.handler(name="send")
    async def first(): ...

    async def second(): ...

    with pytest.raises(HandlerError) as caught:
        reg.handler(name="send")(second)
    message = str(caught.value)
    assert "'send'" in message and f"{__name__}." in message
    assert "first" in message and "second" in message
    assert reg.get("send").func is first


def test_registering_the_same_function_again_is_idempotent(reg):
    async def job(): ...

    reg.handler(job)
    reg.handler(job)
    reg.handler(timeout=9)(job)
    assert reg.names() == ["job"] and reg.get("job").timeout == 9


def test_aliases_resolve_to_the_canonical_spec(reg):
    @reg.handler(name="new_name", aliases=("old_name", "older.name"))
    async def job(): ...

    assert reg.get("old_name") is reg.get("older.name") is reg.get("new_name")
    assert "old_name" in reg and "new_name" in reg and "other" not in reg and 5 not in reg
    assert reg.names() == ["new_name"] and [s.name for s in reg.specs()] == ["new_name"]


def test_alias_colliding_with_a_name_and_name_colliding_with_an_alias(reg):
    @reg.handler(name="a", aliases=("old_a",))
    async def a(): ...

    async def b(): ...

    taken = r"handler name 'a' is already used by .*\.a \(handler 'a'\); cannot register .*\.b$"
    with pytest.raises(HandlerError, match=taken):
        reg.handler(name="b", aliases=("a",))(b)
    with pytest.raises(HandlerError, match="handler name 'old_a' is already used by"):
        reg.handler(name="old_a")(b)
    with pytest.raises(HandlerError, match="aliases must be distinct and differ from the name"):
        reg.handler(name="b", aliases=("b",))(b)
    assert reg.names() == ["a"] and "b" not in reg


def test_plain_def_is_rejected_with_a_hint(reg):
    def blocking(): ...

    with pytest.raises(HandlerError) as caught:
        reg.handler(blocking)
    assert str(caught.value) == f"handler 'blocking' {ASYNC_ONLY}"
    assert reg.names() == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: type("NotAHandler", (), {"run": None}), "class NotAHandler must subclass BaseHandler"),
        (lambda: type("NoRun", (BaseHandler,), {}), "class NoRun must implement async def run"),
        (lambda: type("SyncRun", (BaseHandler,), {"run": lambda self: None}), ASYNC_ONLY),
    ],
)
def test_bad_handler_classes_are_rejected(reg, make, message):
    with pytest.raises(HandlerError, match=re.escape(message)):
        reg.handler(make())


def test_other_non_coroutines_are_rejected(reg):
    async def stream():
        yield 1

    with pytest.raises(HandlerError, match=r"\(got an async generator\)"):
        reg.handler(stream)
    with pytest.raises(HandlerError, match=r"use @handler\(name='x'\)"):
        reg.handler("x")


class SendDailyHTTPReport(BaseHandler):
    """Send the daily report over HTTP."""

    timeout = 30
    retries = 2
    aliases = ("daily_report",)

    async def run(self, recipient: str, copies: int = 1) -> str:
        return f"{copies} to {recipient}"


def test_class_handler_is_registered_and_runs(reg):
    assert reg.handler(SendDailyHTTPReport) is SendDailyHTTPReport
    spec = reg.get("daily_report")
    assert (spec.name, spec.timeout, spec.retries, spec.retry_backoff) == ("send_daily_http_report", 30, 2, 1.0)
    assert (spec.description, spec.takes_context, spec.module) == ("Send the daily report over HTTP.", False, __name__)
    assert [(p.name, p.annotation_text, p.required, p.default) for p in spec.parameters()] == [
        ("recipient", "str", True, None),
        ("copies", "int", False, 1),
    ]
    assert run(spec.func, **spec.validate_kwargs({"recipient": "ops", "copies": 3})) == "3 to ops"


def test_class_handler_name_attribute_and_decorator_options_win(reg):
    class Ping(BaseHandler):
        name = "net.ping"
        timeout = 10

        async def run(self, *, host: str = "localhost", context: RunContext) -> str:
            return f"{host} {context}"

    reg.handler(timeout=3, description="Ping a host")(Ping)
    spec = reg.get("net.ping")
    assert (spec.timeout, spec.description, spec.takes_context) == (3, "Ping a host", True)
    assert run(spec.func, context="ctx") == "localhost ctx"


def test_class_families_share_options_but_not_the_name(reg):
    class Report(BaseHandler):
        name = "report"
        timeout = 60

    class WeeklyReport(Report):
        async def run(self): ...

    reg.handler(WeeklyReport)
    assert reg.names() == ["weekly_report"] and reg.get("weekly_report").timeout == 60


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "_x", "a b", "a/b", "x" * 101, "abc\n", "é"])
def test_bad_names_are_rejected(reg, name):
    async def job(): ...

    with pytest.raises(HandlerError, match="invalid handler name"):
        reg.handler(name=name)(job)
    with pytest.raises(HandlerError, match="invalid handler name"):
        reg.handler(name="ok", aliases=(name,))(job)


@pytest.mark.parametrize("name", ["a", "a.b-c_9", "x" * 100])
def test_good_names_are_accepted(reg, name):
    async def job(): ...

    reg.handler(name=name)(job)
    assert reg.get(name).func is job


def test_function_name_with_capitals_needs_an_explicit_name(reg):
    async def sendReport(): ...

    with pytest.raises(HandlerError, match="invalid handler name 'sendReport'"):
        reg.handler(sendReport)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"timeout": 0}, "timeout must be None or a number > 0"),
        ({"timeout": -1}, "timeout must be None or a number > 0"),
        ({"timeout": "5"}, "timeout must be None or a number > 0"),
        ({"timeout": True}, "timeout must be None or a number > 0"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": 1.5}, "retries must be an integer >= 0"),
        ({"retries": True}, "retries must be an integer >= 0"),
        ({"retry_backoff": -0.1}, "retry_backoff must be a number >= 0"),
        ({"retry_backoff": float("nan")}, "retry_backoff must be a number >= 0"),
        ({"description": 5}, "description must be a string"),
        ({"aliases": "old"}, "aliases must be a tuple of names, not 'old'"),
        ({"aliases": ("old", "old")}, "aliases must be distinct"),
    ],
)
def test_bad_options_are_rejected(reg, options, message):
    async def job(): ...

    with pytest.raises(HandlerError, match=f"^handler 'job': {message}"):
        reg.handler(**options)(job)


def test_star_args_and_positional_only_are_rejected_and_star_kwargs_allows_extras(reg):
    async def star(*args): ...

    async def positional(x, /): ...

    async def extras(x: int, **rest):
        return rest

    with pytest.raises(HandlerError, match=r"must not take \*args"):
        reg.handler(star)
    with pytest.raises(HandlerError, match="parameter 'x' must not be positional-only"):
        reg.handler(positional)
    reg.handler(extras)
    spec = reg.get("extras")
    assert spec.validate_kwargs({"x": 1, "colour": ["red"]}) == {"x": 1, "colour": ["red"]}
    assert errors_of(spec, {"x": "1", "colour": 1}) == {"x": "must be an integer"}


def test_unresolvable_or_unsupported_annotations_fail_at_registration(reg):
    class Opaque: ...

    async def unresolved(x: "NoSuchType"): ...  # noqa: F821

    async def unsupported(x: Opaque): ...

    with pytest.raises(HandlerError, match="handler 'unresolved': cannot resolve annotations"):
        reg.handler(unresolved)
    with pytest.raises(HandlerError, match="handler 'unsupported': unsupported parameter annotation"):
        reg.handler(unsupported)


def test_get_of_an_unknown_name(reg):
    with pytest.raises(UnknownHandler) as caught:
        reg.get("x")
    assert str(caught.value) == "unknown handler 'x'" and isinstance(caught.value, LookupError)


def test_unregister_and_clear(reg):
    @reg.handler(aliases=("old",))
    async def a(): ...

    @reg.handler
    async def b(): ...

    reg.unregister("old")
    assert reg.names() == ["b"] and "old" not in reg
    reg.handler(name="old")(a)  # the alias is free again
    reg.clear()
    assert reg.names() == [] and reg.specs() == []
    with pytest.raises(UnknownHandler):
        reg.unregister("b")


# --- context and parameters ----------------------------------------------------------------------


def test_takes_context(reg):
    @reg.handler
    async def with_context(x: int, context: RunContext):
        return (x, context)

    @reg.handler
    async def without(x: int): ...

    spec = reg.get("with_context")
    assert spec.takes_context and not reg.get("without").takes_context
    assert [p.name for p in spec.parameters()] == ["x"]
    assert run(spec.func, **spec.validate_kwargs({"x": 1}), context="ctx") == (1, "ctx")
    supplied = {"context": "is supplied by taskhub, not by kwargs"}
    assert errors_of(spec, {"x": 1, "context": {}}) == supplied
    assert errors_of(reg.get("without"), {"x": "1", "context": {}}) == {**supplied, "x": "must be an integer"}


async def everything(
    count: int,
    ratio: float,
    label: str,
    flag: bool,
    ids: list[int],
    meta: dict,
    scores: dict[str, int],
    when: datetime,
    mode: Literal["fast", "slow"],
    maybe: int | None,
    note: str | None = None,
    at: datetime | None = None,
    tags: list[str] = ["a", "b"],  # noqa: B006 -- never mutated
    pair: tuple[int, str] = (1, "x"),
    either: int | str = 0,
    anything=None,
    odd: int = None,  # a default that does not fit its type
    since: datetime = datetime(2030, 1, 1, tzinfo=UTC),
    *,
    context: RunContext,
):
    """Takes every supported type."""
    return locals()


@pytest.fixture
def spec(reg):
    reg.handler(everything)
    return reg.get("everything")


def test_parameters_describe_the_signature(spec):
    assert spec.parameters() == [
        Param("count", "int", True, None),
        Param("ratio", "float", True, None),
        Param("label", "str", True, None),
        Param("flag", "bool", True, None),
        Param("ids", "list[int]", True, None),
        Param("meta", "dict", True, None),
        Param("scores", "dict[str, int]", True, None),
        Param("when", "datetime", True, None),
        Param("mode", "Literal['fast','slow']", True, None),
        Param("maybe", "int | None", True, None),
        Param("note", "str | None", False, None),
        Param("at", "datetime | None", False, None),
        Param("tags", "list[str]", False, ["a", "b"]),
        Param("pair", "tuple[int, str]", False, [1, "x"]),
        Param("either", "int | str", False, 0),
        Param("anything", "Any", False, None),
        Param("odd", "int", False, None),
        Param("since", "datetime", False, "datetime.datetime(2030, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)"),
    ]
    json.dumps([p.default for p in spec.parameters()])


def test_example_kwargs_is_json_and_passes_validation(spec):
    example = spec.example_kwargs()
    assert (
        json.loads(json.dumps(example))
        == example
        == {
            "count": 1,
            "ratio": 1.5,
            "label": "text",
            "flag": True,
            "ids": [1],
            "meta": {},
            "scores": {},
            "when": "2030-01-01T00:00:00+00:00",
            "mode": "fast",
            "maybe": 1,
            "note": None,
            "at": None,
            "tags": ["a", "b"],
            "pair": [1, "x"],
            "either": 0,
            "anything": None,
        }
    )
    converted = spec.validate_kwargs(example)
    assert run(spec.func, **converted, context=None)["when"] == datetime(2030, 1, 1, tzinfo=UTC)


# --- the validation matrix -----------------------------------------------------------------------

GOOD = {
    "count": 1,
    "ratio": 0.5,
    "label": "a",
    "flag": False,
    "ids": [1, 2],
    "meta": {},
    "scores": {"a": 1},
    "when": "2030-01-01T00:00:00+00:00",
    "mode": "fast",
    "maybe": None,
}
DROP = object()
TZ_MESSAGE = "must be a datetime with a time zone"
DATETIME_MESSAGE = "must be an ISO 8601 datetime string"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, {}),
        ({"count": "1"}, {"count": "must be an integer"}),
        ({"count": True}, {"count": "must be an integer"}),
        ({"count": 1.5}, {"count": "must be an integer"}),
        ({"count": 1.0}, {"count": "must be an integer"}),
        ({"count": None}, {"count": "must be an integer"}),
        ({"count": DROP}, {"count": "missing"}),
        ({"ratio": 1}, {}),
        ({"ratio": "1.5"}, {"ratio": "must be a number"}),
        ({"ratio": True}, {"ratio": "must be a number"}),
        ({"label": 5}, {"label": "must be a string"}),
        ({"flag": 1}, {"flag": "must be true or false"}),
        ({"flag": "true"}, {"flag": "must be true or false"}),
        ({"ids": []}, {}),
        ({"ids": [1, "2"]}, {"ids": "[1] must be an integer"}),
        ({"ids": "1"}, {"ids": "must be a list"}),
        ({"meta": {"a": [1, {"b": None}]}}, {}),
        ({"meta": []}, {"meta": "must be an object"}),
        ({"scores": {"a": "x"}}, {"scores": "['a'] must be an integer"}),
        ({"scores": [1]}, {"scores": "must be an object"}),
        ({"when": "2030-01-01T09:00:00+02:00"}, {}),
        ({"when": "2030-01-01T00:00:00Z"}, {}),
        ({"when": "2030-01-01T00:00:00"}, {"when": TZ_MESSAGE}),
        ({"when": "tomorrow"}, {"when": DATETIME_MESSAGE}),
        ({"when": 1_900_000_000}, {"when": DATETIME_MESSAGE}),
        ({"mode": "slow"}, {}),
        ({"mode": "medium"}, {"mode": "must be one of 'fast', 'slow'"}),
        ({"maybe": 3}, {}),
        ({"maybe": DROP}, {"maybe": "missing"}),
        ({"maybe": "3"}, {"maybe": "must be an integer"}),
        ({"note": None, "at": None}, {}),
        ({"note": 5}, {"note": "must be a string"}),
        ({"at": "2030-01-01 00:00"}, {"at": TZ_MESSAGE}),
        ({"pair": [2, "y"]}, {}),
        ({"pair": [2, 3]}, {"pair": "[1] must be a string"}),
        ({"either": "s"}, {}),
        ({"either": [1]}, {"either": "must be int | str"}),
        ({"anything": {"x": [1, None]}}, {}),
        ({"colour": "red"}, {"colour": "unknown parameter"}),
        ({"context": 1}, {"context": "is supplied by taskhub, not by kwargs"}),
        (
            {"count": DROP, "flag": "yes", "colour": 1, "when": "2030-01-01T00:00:00"},
            {"colour": "unknown parameter", "count": "missing", "flag": "must be true or false", "when": TZ_MESSAGE},
        ),
    ],
)
def test_validation_matrix(spec, changes, expected):
    kwargs = {k: v for k, v in {**GOOD, **changes}.items() if v is not DROP}
    if expected:
        assert errors_of(spec, kwargs) == expected
    else:
        assert spec.validate_kwargs(kwargs).keys() == kwargs.keys()


def test_validated_kwargs_are_converted_and_only_the_given_ones(spec):
    converted = spec.validate_kwargs({**GOOD, "when": "2030-01-01T09:00:00+02:00", "ratio": 2, "pair": [3, "z"]})
    assert converted["when"] == datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=2)))
    assert converted["when"].utcoffset() == timedelta(hours=2)
    assert (converted["ratio"], type(converted["ratio"]), converted["pair"]) == (2.0, float, (3, "z"))
    assert "tags" not in converted and run(spec.func, **converted, context=None)["tags"] == ["a", "b"]


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


def test_nested_and_rarer_errors_name_the_position(reg):
    @reg.handler
    async def nested(
        grid: list[list[int | str]] = [],  # noqa: B006 -- never mutated
        keyed: dict[int, int] = {},  # noqa: B006
        times: Sequence[datetime] = (),
        level: Annotated[int, Field(gt=0)] = 1,
        colour: Colour = Colour.RED,
    ): ...

    spec = reg.get("nested")
    bad = {"grid": [[1, None]], "keyed": {"a": 1}, "times": ["2030-01-01T00:00:00"], "level": 0, "colour": "green"}
    assert errors_of(spec, bad) == {
        "colour": "must be one of 'red', 'blue'",
        "grid": "[0][1] must be int | str",
        "keyed": "key 'a': must be an integer",
        "level": "input should be greater than 0",  # no translation: pydantic's own words
        "times": "[0] must be a datetime with a time zone",
    }
    good = spec.validate_kwargs({"grid": [[1, "a"]], "keyed": {"2": 3}, "level": 2, "colour": "blue"})
    assert good == {"grid": [[1, "a"]], "keyed": {2: 3}, "level": 2, "colour": Colour.BLUE}
    assert spec.validate_kwargs(spec.example_kwargs()) is not None


@pytest.mark.parametrize("kwargs", [[], "{}", None, 5, {1: 2}])
def test_kwargs_that_are_not_an_object(spec, kwargs):
    assert errors_of(spec, kwargs) == {"__all__": "kwargs must be a JSON object"}


@pytest.mark.parametrize(
    "value, reason",
    [
        (datetime(2030, 1, 1), "Object of type datetime is not JSON serializable"),
        ({1, 2}, "Object of type set is not JSON serializable"),
    ],
)
def test_kwargs_that_are_not_json(spec, value, reason):
    assert errors_of(spec, {**GOOD, "when": value}) == {"__all__": f"kwargs must be JSON-serializable: {reason}"}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), [1.0, float("nan")], {"a": float("inf")}])
def test_nan_and_infinities_are_refused_naming_the_parameter(spec, value):
    """JSON has neither; the message names the parameter that holds one, however deep."""
    assert errors_of(spec, {**GOOD, "when": value}) == {"when": "may not be NaN or an infinity (JSON has neither)"}


def test_kwargs_error_is_one_sorted_line_without_a_traceback(spec):
    with pytest.raises(KwargsError) as caught:
        spec.validate_kwargs({"mode": "z", "count": "1"})
    text = str(caught.value)
    assert text.startswith("count: must be an integer; flag: missing; ") and "\n" not in text
    assert "mode: must be one of 'fast', 'slow'" in text and "Traceback" not in text and "pydantic" not in text
    assert isinstance(caught.value, ValueError)


# --- loading modules and staying free of Django -------------------------------------------------

HANDLER_MODULE = '''
from __future__ import annotations

from datetime import datetime

from tasks_app.handlers.registry import handler


@handler(timeout=5, aliases=("legacy_ping",))
async def ping(host: str, at: datetime | None = None) -> str:
    """Ping a host."""
    return host
'''


def test_load_modules_imports_handler_modules(reg, tmp_path, monkeypatch):
    (tmp_path / "taskhub_test_handlers_ok.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setattr(registry_module, "handler", reg.handler)
    monkeypatch.delitem(sys.modules, "taskhub_test_handlers_ok", raising=False)
    try:
        reg.load_modules(" taskhub_test_handlers_ok, ")
        reg.load_modules(["taskhub_test_handlers_ok"])  # already imported: nothing happens
    finally:
        sys.modules.pop("taskhub_test_handlers_ok", None)
    spec = reg.get("legacy_ping")
    assert (spec.name, spec.timeout, spec.description) == ("ping", 5, "Ping a host.")
    assert spec.module == "taskhub_test_handlers_ok"
    assert [p.annotation_text for p in spec.parameters()] == ["str", "datetime | None"]
    assert errors_of(spec, {"host": "h", "at": "2030-01-01T00:00"}) == {"at": TZ_MESSAGE}
    assert "ping" not in registry


def test_load_modules_failure_is_one_line(reg, tmp_path, monkeypatch):
    (tmp_path / "taskhub_test_handlers_bad.py").write_text('raise ValueError("first line\\n  second line")\n')
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(HandlerError) as caught:
        reg.load_modules(["taskhub_no_such_module"])
    assert str(caught.value) == (
        "cannot import handler module 'taskhub_no_such_module': "
        "ModuleNotFoundError: No module named 'taskhub_no_such_module'"
    )
    try:
        with pytest.raises(HandlerError) as caught:
            reg.load_modules(["taskhub_test_handlers_bad"])
    finally:
        sys.modules.pop("taskhub_test_handlers_bad", None)
    assert str(caught.value) == (
        "cannot import handler module 'taskhub_test_handlers_bad': ValueError: first line second line"
    )


def test_registry_imports_no_django():
    code = textwrap.dedent("""
        import sys, tasks_app.handlers.registry
        assert not any(m.startswith('django') for m in sys.modules), sorted(m for m in sys.modules if 'django' in m)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=MAIN, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
