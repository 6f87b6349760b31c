"""Measuring one process: starting and watching it, timing, memory, a busy machine, drift."""
