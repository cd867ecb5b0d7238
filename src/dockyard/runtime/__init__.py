"""dockyard.runtime layer (see shared/DESIGN.md)."""
