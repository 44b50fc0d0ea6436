"""Discord (`kind = "discord"`): an execute-webhook URL."""
