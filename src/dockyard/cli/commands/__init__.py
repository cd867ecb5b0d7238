"""The dockyard CLI's commands, one module per group (see cli/registry.py)."""
