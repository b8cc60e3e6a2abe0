"""natsfleet.supervisor."""
