"""Pulumi entry point (`main: stacks/` in Pulumi.yaml): build the stack from its config."""

from stacks.program import main

main()
