"""The agent family's Hydra config tree (on the search path through its plugin)."""
