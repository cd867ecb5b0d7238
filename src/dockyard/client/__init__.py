"""dockyard.client: a synchronous Engine API client (see shared/DESIGN.md).

``Client`` speaks HTTP over unix or TCP (+TLS) sockets with a small
transport of its own (fast to import: the CLI's start-up time counts).
"""

from dockyard.client.api import API_VERSION, Client, HijackedSocket, encode_filters
from dockyard.client.errors import ConnectionFailed, RemoteError
from dockyard.client.stdcopy import demux
from dockyard.client.transport import Endpoint, Response, TLSConfig

__all__ = ["API_VERSION", "Client", "ConnectionFailed", "Endpoint", "HijackedSocket", "RemoteError",
           "Response", "TLSConfig", "demux", "encode_filters"]
