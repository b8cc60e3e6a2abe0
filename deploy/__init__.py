"""natsfleet.deploy."""
