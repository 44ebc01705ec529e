"""Analytics of inspections, aggregated in the database: daily counts, the dashboard, drift, CSV export."""

from core.analytics.daily import DAILY_COLUMNS, daily_stats, default_range

__all__ = ["DAILY_COLUMNS", "daily_stats", "default_range"]
