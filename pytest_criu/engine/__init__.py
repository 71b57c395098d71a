"""The engine layer: container engines, CRIU checkpoints and host checks.

Nothing in this package imports pytest; the pytest layer calls into it.
"""
