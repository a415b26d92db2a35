"""The event pipeline: the contract (events), Redis Streams (streams, the embedded server),
the ingest workers, dead letters, what the clock raises, the notification outbox, officer actions."""
