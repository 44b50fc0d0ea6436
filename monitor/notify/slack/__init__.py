"""Slack (`kind = "slack"`): an incoming webhook."""
