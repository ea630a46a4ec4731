"""The daemon's control socket (pods, checkpoint, stats) and its client.

- `protocol`: JSON lines, one request and one reply per connection.
- `server`: the trio server in the daemon, dispatching to handlers.
- `client`: the blocking `request()` the CLI uses.
"""

from sandboxfs.control.client import ControlError, request
from sandboxfs.control.protocol import ProtocolError

__all__ = ["ControlError", "ProtocolError", "request"]
