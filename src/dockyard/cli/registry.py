"""The command table: every ``dockyard`` verb, where it lives, what it does.

Commands are loaded lazily: ``dockyard images`` imports only
``dockyard.cli.commands.image``, so start-up stays fast however many
commands exist.  A command is a function ``run(ctx, argv) -> int`` named
``"module:function"`` relative to ``dockyard.cli.commands``.

To add commands (the container verbs: run, create, start, ps, logs, exec,
...), write ``commands/container.py`` with their functions and list them
here: top-level verbs in :data:`COMMANDS`, management commands in
:data:`GROUPS` (``dockyard container ls``).  Nothing else changes.
"""

from __future__ import annotations

from typing import NamedTuple

# NamedTuples rather than dataclasses: immutable values all the same, and
# importing dataclasses (with inspect) would cost every command ~5 ms.


class CommandSpec(NamedTuple):
    target: str  # "module:function" under dockyard.cli.commands
    summary: str
    aliases: tuple[str, ...] = ()


class Group(NamedTuple):
    summary: str
    commands: dict[str, CommandSpec]

    def find(self, name: str) -> CommandSpec | None:
        if name in self.commands:
            return self.commands[name]
        for spec in self.commands.values():
            if name in spec.aliases:
                return spec
        return None


#: Top-level verbs (``dockyard images``), in the order help lists them.
COMMANDS: dict[str, CommandSpec] = {
    "run": CommandSpec("run:run", "Create and run a new container from an image"),
    "exec": CommandSpec("container:exec_", "Execute a command in a running container"),
    "ps": CommandSpec("container:ps", "List containers"),
    "create": CommandSpec("run:create", "Create a new container"),
    "start": CommandSpec("container:start", "Start one or more stopped containers"),
    "stop": CommandSpec("container:stop", "Stop one or more running containers"),
    "restart": CommandSpec("container:restart", "Restart one or more containers"),
    "kill": CommandSpec("container:kill", "Kill one or more running containers"),
    "rm": CommandSpec("container:rm", "Remove one or more containers"),
    "logs": CommandSpec("container:logs", "Fetch the logs of a container"),
    "attach": CommandSpec("container:attach", "Attach local standard input, output, and error streams to a "
                                              "running container"),
    "top": CommandSpec("container:top", "Display the running processes of a container"),
    "port": CommandSpec("container:port", "List port mappings or a specific mapping for the container"),
    "stats": CommandSpec("container:stats", "Display a live stream of container(s) resource usage statistics"),
    "pause": CommandSpec("container:pause", "Pause all processes within one or more containers"),
    "unpause": CommandSpec("container:unpause", "Unpause all processes within one or more containers"),
    "rename": CommandSpec("container:rename", "Rename a container"),
    "update": CommandSpec("container:update", "Update configuration of one or more containers"),
    "wait": CommandSpec("container:wait", "Block until one or more containers stop, then print their exit codes"),
    "cp": CommandSpec("container:cp", "Copy files/folders between a container and the local filesystem"),
    "diff": CommandSpec("container:diff", "Inspect changes to files or directories on a container's filesystem"),
    "commit": CommandSpec("container:commit", "Create a new image from a container's changes"),
    "export": CommandSpec("container:export", "Export a container's filesystem as a tar archive"),
    "images": CommandSpec("image:ls", "List images"),
    "import": CommandSpec("image:import_", "Import the contents from a tarball to create a filesystem image"),
    "load": CommandSpec("image:load", "Load an image from a tar archive or STDIN"),
    "save": CommandSpec("image:save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "tag": CommandSpec("image:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": CommandSpec("image:rm", "Remove one or more images"),
    "history": CommandSpec("image:history", "Show the history of an image"),
    "inspect": CommandSpec("inspect:inspect", "Return low-level information on Dockyard objects"),
    "events": CommandSpec("system:events", "Get real time events from the server"),
    "info": CommandSpec("system:info", "Display system-wide information"),
    "version": CommandSpec("system:version", "Show the Dockyard version information"),
}

#: Management commands (``dockyard image ls``).
GROUPS: dict[str, Group] = {
    "image": Group("Manage images", {
        "bootstrap": CommandSpec("image:bootstrap", "Create a base image from the host (busybox)"),
        "history": CommandSpec("image:history", "Show the history of an image"),
        "import": CommandSpec("image:import_", "Import the contents from a tarball to create a filesystem image"),
        "inspect": CommandSpec("image:inspect", "Display detailed information on one or more images"),
        "load": CommandSpec("image:load", "Load an image from a tar archive or STDIN"),
        "ls": CommandSpec("image:ls", "List images", aliases=("list",)),
        "prune": CommandSpec("image:prune", "Remove unused images"),
        "rm": CommandSpec("image:rm", "Remove one or more images", aliases=("remove",)),
        "save": CommandSpec("image:save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
        "tag": CommandSpec("image:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    }),
    "container": Group("Manage containers", {
        "attach": CommandSpec("container:attach", "Attach local standard input, output, and error streams to a "
                                                  "running container"),
        "commit": CommandSpec("container:commit", "Create a new image from a container's changes"),
        "cp": CommandSpec("container:cp", "Copy files/folders between a container and the local filesystem"),
        "create": CommandSpec("run:create", "Create a new container"),
        "diff": CommandSpec("container:diff", "Inspect changes to files or directories on a container's "
                                              "filesystem"),
        "exec": CommandSpec("container:exec_", "Execute a command in a running container"),
        "export": CommandSpec("container:export", "Export a container's filesystem as a tar archive"),
        "inspect": CommandSpec("container:inspect", "Display detailed information on one or more containers"),
        "kill": CommandSpec("container:kill", "Kill one or more running containers"),
        "logs": CommandSpec("container:logs", "Fetch the logs of a container"),
        "ls": CommandSpec("container:ps", "List containers", aliases=("list", "ps")),
        "pause": CommandSpec("container:pause", "Pause all processes within one or more containers"),
        "port": CommandSpec("container:port", "List port mappings or a specific mapping for the container"),
        "prune": CommandSpec("container:prune", "Remove all stopped containers"),
        "rename": CommandSpec("container:rename", "Rename a container"),
        "restart": CommandSpec("container:restart", "Restart one or more containers"),
        "rm": CommandSpec("container:rm", "Remove one or more containers", aliases=("remove",)),
        "run": CommandSpec("run:run", "Create and run a new container from an image"),
        "start": CommandSpec("container:start", "Start one or more stopped containers"),
        "stats": CommandSpec("container:stats", "Display a live stream of container(s) resource usage "
                                                "statistics"),
        "stop": CommandSpec("container:stop", "Stop one or more running containers"),
        "top": CommandSpec("container:top", "Display the running processes of a container"),
        "unpause": CommandSpec("container:unpause", "Unpause all processes within one or more containers"),
        "update": CommandSpec("container:update", "Update configuration of one or more containers"),
        "wait": CommandSpec("container:wait", "Block until one or more containers stop, then print their exit "
                                              "codes"),
    }),
    "system": Group("Manage Dockyard", {
        "df": CommandSpec("system:df", "Show Dockyard disk usage"),
        "events": CommandSpec("system:events", "Get real time events from the server"),
        "info": CommandSpec("system:info", "Display system-wide information"),
        "prune": CommandSpec("container:system_prune", "Remove unused data"),
    }),
}
