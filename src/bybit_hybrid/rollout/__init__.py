"""Rollout: the REST polling stream, the rollout modes, parallel comparison and failover shells."""
