"""Options on RabbitMQ: replay dead letters to the queues they died in (only queues that really
dead-letter into the DLQ: the management API, else rabbitmq.dead_letter_sources), with the same
code as ``runbook dlq replay`` (:meth:`runbook_lib.clients.rabbitmq.RabbitMQ.replay`).

In diagnose mode the plan touches no message (the depth and the exact command only: the
runbook's step 2 already sampled them); the dry-run preview, which peeks and puts back, is made
in resolve mode only. On a quorum-queue DLQ every peek counts against delivery-limit; give the DLQ
``delivery-limit: -1`` or use a classic queue."""

from __future__ import annotations

from typing import Any

from runbook_lib.clients.rabbitmq import replay_command
from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.actions.guard import Guard, Option


class QueueOptions(Guard):
    def dlq_replay(
        self,
        queue: str = "",
        limit: int | None = 100,
        *,
        include_expired: bool = False,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """Republish up to ``limit`` dead letters of ``queue`` (default: rabbitmq.dlq_queue) to
        the queues they died in, each acked only after the broker confirmed its republish; those
        from a queue that is no dead-letter source of ``queue``, replayed rabbitmq.max_replays
        times already, without x-death or unroutable stay in the queue, and so do expired (TTL) ones
        unless ``include_expired``. In resolve mode the plan is a dry run over the first
        messages; in diagnose mode it is the queue's depth and the command, nothing peeked."""
        cfg = self.rb.settings.rabbitmq
        q = queue or cfg.dlq_queue
        count = None if limit is None else int(limit)
        include_expired = bool(include_expired)
        command = replay_command(q, count, cfg.max_replays, self.rb.operator, include_expired)

        def plan() -> dict[str, Any]:
            if self.rb.mode != "resolve":  # nothing will be done: do not peek (each peek is a delivery)
                depth = self.rb.rabbitmq.depth(q)
                up_to = "every one" if count is None else f"up to {count}"
                return {
                    "command": command,
                    "queue": q,
                    "depth": depth,
                    "would": f"replay {up_to} of the {depth} dead letters in {q} (no preview in diagnose mode: "
                    "nothing was peeked; run in resolve mode, or the command with --dry-run, to preview)",
                    "include_expired": include_expired,
                    "noop": depth == 0,
                }
            preview_n = cfg.sample_size if count is None else min(count, cfg.sample_size)
            sources = self.rb.rabbitmq.sources(self.rb.settings, q)
            preview = self.rb.rabbitmq.replay(
                q, sources, limit=preview_n, max_replays=cfg.max_replays, dry_run=True, include_expired=include_expired
            )
            return {
                "command": command,
                "queue": q,
                "depth": preview.depth_before,
                "preview": preview.to_dict(),
                "would": preview.summary(),
                "noop": preview.depth_before == 0,
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            sources = self.rb.rabbitmq.sources(self.rb.settings, q)  # asked again: the plan may be old
            return self.rb.rabbitmq.replay(
                q, sources, limit=count, max_replays=cfg.max_replays, include_expired=include_expired
            ).to_dict()

        option = Option(
            "dlq_replay",
            f"Replay {'all' if count is None else f'up to {count}'} dead letters from {q}",
            f"{q} on {self._mq_where()}",
            command,
            ("rabbitmq_queue", q),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    def _mq_where(self) -> str:
        try:
            return self.rb.rabbitmq.where
        except SourceError:
            return "RabbitMQ (not configured)"
