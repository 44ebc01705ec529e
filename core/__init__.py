"""Services of the inspection studio: what pages, the command line and tests call.

Never imports Streamlit.
"""
