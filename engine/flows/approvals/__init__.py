"""Approvals at run time: routing, tasks, escalation, delegation, PDF records."""
