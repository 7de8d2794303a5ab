"""Run configurations (dataclasses with named presets)."""
