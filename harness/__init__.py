"""Gameday: a chaos/verification harness for AWS security monitoring."""
