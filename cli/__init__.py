"""natsfleet.cli."""
