"""Insights: reports that read a form's history and suggest something (e.g. standard templates
for frequently combined multiselect choices)."""
