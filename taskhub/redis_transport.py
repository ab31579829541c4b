"""kombu's Redis transport, with one fix: a closed connection never kills the worker.

``taskhub/celery.py`` registers it for ``redis://`` and ``rediss://`` URLs (kombu's transport
aliases); everything else is kombu 5.7.0's own.

The defect (kombu 5.7.0; the same family as celery/kombu#582 and #970): when Redis goes
away while a worker holds an unacknowledged message and its consumer is polling, Celery's
``Consumer.on_connection_error_after_connected`` first calls ``Connection.collect()``. Its
``Channel.close()`` stops half-way: ``_brpop_read()`` raises a connection error before the
channel is marked closed, and ``collect()`` then detaches the transport from its connection
(``Transport.client = None``). The next ``Connection.close()`` closes the same channel again;
it drops its Redis pools and restores the unacknowledged message, which needs a new pool,
whose parameters are read from ``Transport.client.hostname`` — ``AttributeError``, which no
caller treats as a broker error, so the worker exits ("Unrecoverable error"). Acknowledging a
finished task on such a channel takes the same path.

The fix: a channel whose transport has lost its connection says so with the connection error
every caller already handles. Nothing is lost by it: Redis was unreachable at that moment, so
the restore could not have reached it either; the message stays in Redis's unacknowledged set
(restored after ``visibility_timeout`` if Redis kept it), and taskhub's engines re-deliver a
queued run whose message vanished (``engines/redelivery.py``).
"""

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
