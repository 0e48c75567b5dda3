"""What goes out after a record is archived: Slack (Block Kit, every alert) and PagerDuty
(critical alerts, on the incident Alertmanager opened), with signed links to the record
(:mod:`.messages`). Everything put into their text is escaped for that service."""
