"""The agent -> controller telemetry plane: message schema, msgpack codec, CURVE keys, publisher.
Telemetry never blocks work: every send is non-blocking and bounded."""
