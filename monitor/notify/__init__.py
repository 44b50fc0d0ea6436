"""Notification sinks: one module per destination, all with the same shape (`name`, `async send`)."""
