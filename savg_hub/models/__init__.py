"""Networks as diffusers-style models (``ModelMixin`` + ``ConfigMixin``), one model per file."""
