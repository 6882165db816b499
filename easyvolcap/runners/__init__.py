"""Each tool's job as a typed function over a dataset layout and a model."""
