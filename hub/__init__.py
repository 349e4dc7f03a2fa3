"""nacritan hub: the live backend of a guild's Tactical Interface."""
