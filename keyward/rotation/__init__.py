"""Key rotation: a journaled, crash-safe state machine (state.py) applied by the service (service.py).

Flow: `service` decides which projects are due, `steps` drives one journaled rotation row through
create → verify → promote → publish, `retire` deletes keys whose grace period is over and sweeps
keys keyward created at Google but no longer knows.
"""
