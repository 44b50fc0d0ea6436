"""The HTTP layer every webhook sink shares: one client, one place where httpx errors are read."""
