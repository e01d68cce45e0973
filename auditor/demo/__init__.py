"""The built-in scenarios and `auditor demo`."""
