"""Notification sinks: one package per destination, each with the same shape (`settings.py`, the
model of its configuration section; `transport.py`, the sink: `name` and `async send`), plus what
they share (`base.py` the message texts, `http/` the HTTP seam) and `sinks.py`, which builds every
configured sink."""

# The `[notify]` section's model imports every sink's settings model, which imports the
# configuration's field types: loading the section first lets a sink module be imported on its
# own (the other way round, the cycle would meet a half-initialised settings module).
import monitor.config.notify  # noqa: F401
