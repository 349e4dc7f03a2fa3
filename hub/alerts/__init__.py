"""Discord alerts: rules evaluated on committed uploads, an outbox, a webhook sender."""
