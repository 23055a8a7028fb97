"""protection layer."""
