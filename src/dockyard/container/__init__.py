"""dockyard.container layer (see shared/DESIGN.md)."""
