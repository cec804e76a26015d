"""Converters from official checkpoint formats to safetensors + config (pure ``convert_*_state_dict`` functions)."""
