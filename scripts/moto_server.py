"""moto's server, with DynamoDB's per-item atomicity restored.

moto's threaded server handles requests concurrently with no locking, so two conditional
writes to the same item can both pass their condition, and two atomic counter updates can
lose one. Real DynamoDB applies writes to an item one at a time, and the rotation and
throttle logic rely on exactly that. Applying moto's requests one at a time (connections
are still accepted and read concurrently) restores the guarantee. Same arguments as
`moto_server`."""
import sys
import threading

from moto import server

_lock = threading.Lock()


class SerializedApplication(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        with _lock:
            # Build the whole response under the lock; moto's responses are small.
            return list(super().__call__(environ, start_response))


server.DomainDispatcherApplication = SerializedApplication
sys.exit(server.main(sys.argv[1:]))
