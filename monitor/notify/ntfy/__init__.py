"""ntfy (`kind = "ntfy"`): a push to one topic on ntfy.sh or a self-hosted server."""
