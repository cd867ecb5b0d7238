"""dockyard.oci layer (see shared/DESIGN.md)."""
