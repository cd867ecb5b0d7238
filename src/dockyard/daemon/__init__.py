"""dockyard.daemon: dockyardd, the Engine API server (see shared/DESIGN.md).

Modules, each with the details in its docstring:

``main``       entry point: flags + daemon.json, data-root lock, pid file,
               listeners, serve until SIGTERM/SIGINT (containers untouched)
``config``     DaemonConfig and dockerd's rules for flags vs daemon.json
``listeners``  -H addresses, unix socket permissions, TCP/TLS policy
``lock``       one daemon per data root (flock), the pid file
``engine``     Engine: what routes get (config, event bus, services)
``services``   open_engine: the store, image and container services
               (all or the daemon does not start), scratch-area clean-up
``app``        the aiohttp app: API versions, error table, RouteTable,
               request helpers (json_response, query_bool, in_executor)
``errors``     DockyardError class -> HTTP status
``events``     EventBus (ring of 256 + live subscribers), Event, Publisher
``filters``    Docker's ``filters`` query parameter
``streaming``  jsonmessage progress streams, request bodies and response
               bodies streamed through worker threads
``hijack``     101 UPGRADED raw streams for attach/exec, stdcopy frames
``sysinfo``    host facts for /version and /info
``routes``     one module per resource, listed in ROUTE_MODULES: system,
               images, containers, exec, archive; ``routes.stdio`` relays
               the hijacked streams of attach and exec start

Container routes are thin: they parse Docker's parameters and await
``engine.containers`` (dockyard.container's ContainerService, opened by
``services.open_engine``), which owns every container rule:
attach before start, log follow, exec records, start errors.  Adding a
resource (networks, volumes, ...): write ``routes/<resource>.py`` with
``register(routes, engine)`` over its service on the Engine (opened in
``services``), use ``hijack`` for raw streams and ``streaming`` for
progress and bodies, and add the module to ``ROUTE_MODULES``.
"""
