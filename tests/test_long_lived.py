"""A dedicated scheduler process freezes what it loaded; any other process never does."""

import gc
import threading

import pytest

from tasks_app.engines import long_lived
from tasks_app.engines.celery import beat


@pytest.fixture
def fresh_flag(monkeypatch):
    monkeypatch.setattr(long_lived, "_dedicated", False)
    yield
    gc.unfreeze()  # the test process must go on collecting everything


def test_a_load_freezes_what_it_made_only_in_a_dedicated_process(fresh_flag):
    gc.unfreeze()
    with long_lived.loading():
        assert gc.isenabled()  # a test run, a web process: the collector as it was
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    long_lived.dedicate()
    with long_lived.loading():
        assert not gc.isenabled()  # no collections while the jobs load
        loaded = [[i] for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(loaded)


def test_a_failed_load_leaves_the_collector_on(fresh_flag):
    long_lived.dedicate()
    with pytest.raises(RuntimeError), long_lived.loading():
        raise RuntimeError("the database went away")
    assert gc.isenabled()


def test_a_beat_in_a_workers_thread_is_not_dedicated_and_a_beat_of_its_own_is(fresh_flag):
    thread = threading.Thread(target=beat._dedicated)  # ``celery worker -B`` with a threaded beat
    thread.start()
    thread.join()
    assert long_lived._dedicated is False
    beat._dedicated()  # ``celery beat``: the signal comes in its main thread
    assert long_lived._dedicated is True
