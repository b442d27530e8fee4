"""Reports on what the service sent, pulled from the push provider (AppMetrica's, so far)."""
