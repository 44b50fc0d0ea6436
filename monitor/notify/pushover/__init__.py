"""Pushover (`kind = "pushover"`): a push to one user or group key, emergency alarms included."""
