"""Thin click entry points: the DVC stages and the tools of the `embridge` command."""
