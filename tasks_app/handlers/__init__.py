"""Handlers: the async functions jobs name, held by name in a registry.

``registry`` holds them (the ``@handler`` decorator, aliases, handler modules), ``specs`` reads
a function or ``BaseHandler`` class into a ``HandlerSpec``, ``kwargs_schema`` checks a job's
kwargs strictly against the handler's annotations, ``json_limits`` says what JSON values come
in at all, ``context`` is the ``RunContext`` a handler may ask for, and ``bundled`` holds the
handlers that ship with taskhub.

What it is not: this package imports no Django ORM and no engine; it stores, schedules and
runs nothing. Everything above it (models, runner, engines) depends on it, never the reverse.
"""
