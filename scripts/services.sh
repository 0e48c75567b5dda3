#!/usr/bin/env bash
# Make sure the loopback services the tests and the demo talk to are up: PostgreSQL (5432),
# Redis (6379), RabbitMQ (5672, and its management API on 15672). Each is started with this machine kind's own command when
# it does not answer; if it still does not answer, fail loudly (tests never skip a service).
set -uo pipefail
log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 i
  for i in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  return 1
}

ensure() {
  local name=$1 port=$2; shift 2
  if port_open "$port"; then return 0; fi
  log "$name is not answering on 127.0.0.1:$port; starting it"
  as_root bash -c "$*" >/dev/null 2>&1 || true
  if wait_port "$port"; then log "$name is up"; else log "FAILED: $name did not come up on 127.0.0.1:$port"; return 1; fi
}

rc=0
ensure PostgreSQL 5432 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main start' || rc=1
ensure Redis 6379 'mkdir -p /var/lib/redis /var/log/redis; redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log' || rc=1
ensure RabbitMQ 5672 'rabbitmq-server -detached' || rc=1
# The management API (dlq replay asks it which queues dead-letter into a DLQ), on loopback only:
# the listener is set before the plugin starts, and written to rabbitmq.conf for later starts.
if port_open 5672 && ! port_open 15672; then
  log "enabling RabbitMQ's management plugin on 127.0.0.1:15672"
  conf=/etc/rabbitmq/rabbitmq.conf
  if [ -d /etc/rabbitmq ] && ! grep -qs '^management.tcp.ip' "$conf"; then
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = 15672\n' | as_root tee -a "$conf" >/dev/null
  fi
  as_root rabbitmqctl eval 'application:set_env(rabbitmq_management, tcp_config, [{ip, "127.0.0.1"}, {port, 15672}]).' >/dev/null 2>&1
  as_root rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
  if wait_port 15672; then log "RabbitMQ management is up"; else log "FAILED: RabbitMQ management did not come up on 127.0.0.1:15672"; rc=1; fi
fi
exit $rc
