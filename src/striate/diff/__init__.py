"""`striate diff A B`: what changed between two checkpoints of one model."""
