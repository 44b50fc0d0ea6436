"""Notification sinks: one package per destination, each with the same shape (`transport.py`,
the sink: `name` and `async send`), plus what they share (`base.py` the message texts, `http/`
the HTTP seam) and `sinks.py`, which builds every configured sink."""
