"""``pytest-criu setup``: make a Debian or Ubuntu host ready for the plugin.

Not part of the engine layer (it installs packages and manages daemons) and not part of the
pytest layer: :mod:`.command` is the entry point; every other module does one job.
"""
