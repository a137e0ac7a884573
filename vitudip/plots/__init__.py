"""Figures of every stage (matplotlib, no display needed)."""
