"""Evolution strategies as a meta-optimiser (seed 000: ES-ProtoNet), sharded over a ``pop`` mesh axis."""
