"""Pure PyTorch: backbones, heads and their artifacts (no database, no Streamlit)."""
