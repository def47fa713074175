"""Flows at run time: state machines, automations, connectors, outbox, timers, approvals."""
