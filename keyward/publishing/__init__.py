"""Choosing each pool's current key and publishing it to the pool's sinks.

Flow: `service.publish_pools` reads the pool's active keys and each project's load
(`keyward.usage.accounting.pool_loads`), lets `keyward.quota.selection.choose` pick (with
hysteresis), records the choice on the pool row with a journal event when it changed (a pass that
changes nothing writes nothing), then writes the key to the sinks that lack it (a sink is read only
when its change marker moved), the non-secret state file, and runs the post-publish hook after a
change.
"""
