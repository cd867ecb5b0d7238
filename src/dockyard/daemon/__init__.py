"""dockyard.daemon layer (see shared/DESIGN.md)."""
