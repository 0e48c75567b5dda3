"""The durable intake journal (:mod:`.journal`, SQLite in WAL mode): every accepted notification
is committed before the receiver answers, deduplicated, grouped and capped into jobs that
workers claim; and one receiver per journal and per archive (:mod:`.locks`)."""
