"""Streamlit pages: layout and widgets only; every action calls core/."""
