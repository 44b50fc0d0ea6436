"""The generic JSON webhook (`kind = "json"`): our schema, signed when a secret is set."""
