"""Reporting: collect result files into one tidy frame (collect), then tables, figures and the report page."""
