"""The tasks: one package each, exposing `TASK` (see dlapps.task)."""
