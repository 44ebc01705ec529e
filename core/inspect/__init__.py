"""The one inspection engine: load a tool's models, judge an image or frame, decide, record."""
