"""The ``finpulse`` command and the assembled settings: imports every package, imported by none."""
