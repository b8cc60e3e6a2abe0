"""natsfleet.agents."""
