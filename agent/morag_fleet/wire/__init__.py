"""What the agent and the controller agree on over ZeroMQ: message schema, msgpack codec, CURVE
keys and the agent's socket settings. The agent's side of the conversation (the publisher thread
and the host figures it sends) lives in `morag_fleet.agent`."""
