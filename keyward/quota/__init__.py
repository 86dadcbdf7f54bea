"""Pure quota decisions: usage windows and the Pacific day, Google's error signals, key choice.

Nothing in this package does I/O or reads the clock: every function takes `now` (an aware
datetime) so that the service layer decides when "now" is and tests can pin it anywhere,
including the two daylight-saving switch days of the Pacific time zone.
"""
