"""The dashboard and JSON API the daemon serves (`[web]`): an adapter like the others."""
