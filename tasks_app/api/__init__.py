"""The signed trigger API: other systems start a job's run and read its status over HTTP.

``views`` and ``urls`` serve ``/api/``. The clients and the nonces they used are models
(``models/api_clients.py``); the admin creates clients and rotates their secrets
(``admin/api_clients.py``); ``api/models.py`` only keeps a name migration 0003 refers to.

What it is not: no session login, no job editing — a client may start runs of the jobs it
is allowed and read their status, nothing more. How a request is signed is
``tasks_app/signing.py`` (pure functions, shared with clients, tests and the alert webhook).
"""
