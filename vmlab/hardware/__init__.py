"""What the silicon does: machine frames, the host and its devices."""
