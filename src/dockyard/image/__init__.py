"""dockyard.image layer (see shared/DESIGN.md)."""
