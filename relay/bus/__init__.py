"""An event's frames on Redis Streams: the transcribing relay publishes, stateless edges serve viewers."""
