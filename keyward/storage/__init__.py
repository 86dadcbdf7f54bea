"""Persistence: engine and pragmas (`engine`), the tables in Core (`tables`) and the typed models
mapped onto them (`models`), schema versions (`migrate`), the open database (`database.Store`), and
the query modules: through the ORM (`store`, `usage_queries`, `rotation_queries`, `secret_queries`)
and through Core for commands that only read (`read_queries`, `cost_queries`). Key strings are
sealed at rest by `keyward.sealing` when a master key exists (`keyward.master_key`)."""
