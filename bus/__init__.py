"""natsfleet.bus."""
