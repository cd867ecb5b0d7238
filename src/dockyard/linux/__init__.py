"""dockyard.linux layer (see shared/DESIGN.md)."""
