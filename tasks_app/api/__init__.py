"""The signed trigger API: other systems start a job's run and read its status over HTTP.

``signing`` says how a request is signed (pure functions, shared with clients and tests),
``models`` holds the API clients and the nonces they used, ``views`` and ``urls`` serve
``/api/``, and ``admin`` creates clients and rotates their secrets.
"""
