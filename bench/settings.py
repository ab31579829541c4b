"""Settings of a benchmark's own process: taskhub's, plus the stock peer's database as ``peer``.

Only the orchestrating script uses this; the workers and beats it starts run
``taskhub.settings`` with their own environment. ``with bench.common.peer():`` routes
ORM calls (and the signals they fire) to ``peer``.
"""

import os

from taskhub.config import Env, database
from taskhub.settings import *  # noqa: F403
from taskhub.settings import BASE_DIR, DATABASES

if os.environ.get("BENCH_PEER_DATABASE_URL"):
    DATABASES["peer"] = database(Env({"DATABASE_URL": os.environ["BENCH_PEER_DATABASE_URL"]}), BASE_DIR)
DATABASE_ROUTERS = ["bench.common.SideRouter"]
