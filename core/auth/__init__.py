"""Accounts, roles and permissions, their enforcement in the services, and electronic signatures (issue 20)."""
