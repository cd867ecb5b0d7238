"""dockyard.logs layer (see shared/DESIGN.md)."""
